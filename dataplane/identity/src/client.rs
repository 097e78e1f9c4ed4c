//! One call of Istio's `CreateCertificate` over gRPC with TLS: the CA's serving
//! certificate must chain to the configured root and carry the configured name; the token
//! and the root are read afresh for each call.

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::config::Config;
use crate::error::FetchError;

/// The generated protobuf messages and gRPC client (`cert-authority/ca/proto/ca.proto`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub(crate) mod pb {
    tonic::include_proto!("istio.v1.auth");
}

use pb::IstioCertificateRequest;
use pb::istio_certificate_service_client::IstioCertificateServiceClient;

/// Sends `csr_pem` and returns the CA's `cert_chain` (leaf first, roots last).
pub(crate) async fn create_certificate(
    config: &Config,
    csr_pem: String,
) -> Result<Vec<String>, FetchError> {
    let token = config
        .token
        .read()
        .map_err(|e| FetchError::Token {
            origin: config.token.origin(),
            reason: e.to_string(),
        })?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(FetchError::Token {
            origin: config.token.origin(),
            reason: "empty".into(),
        });
    }
    let root = config.ca_root.read().map_err(|e| FetchError::CaRoot {
        origin: config.ca_root.origin(),
        reason: e.to_string(),
    })?;
    if !root.contains("-----BEGIN CERTIFICATE-----") {
        return Err(FetchError::CaRoot {
            origin: config.ca_root.origin(),
            reason: "no PEM certificate".into(),
        });
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root))
        .domain_name(config.ca_server_name.clone());
    let endpoint = Endpoint::from_shared(config.ca_address.clone())
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| FetchError::Config(format!("CA address {}: {e}", config.ca_address)))?
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout);
    let channel = endpoint.connect().await.map_err(|e| FetchError::Connect {
        address: config.ca_address.clone(),
        reason: source_chain(&e),
    })?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr_pem,
        validity_duration: i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX),
        metadata: None,
    });
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| FetchError::Token {
            origin: config.token.origin(),
            reason: "not a valid header value".into(),
        })?;
    request.metadata_mut().insert("authorization", bearer);
    let response = IstioCertificateServiceClient::new(channel)
        .create_certificate(request)
        .await
        .map_err(|status| FetchError::Refused {
            code: status.code(),
            message: status.message().to_owned(),
        })?;
    Ok(response.into_inner().cert_chain)
}

/// An error and its causes, `a: b: c` (tonic's transport errors say little on their own).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
