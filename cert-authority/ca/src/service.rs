//! Istio's `istio.v1.auth.IstioCertificateService/CreateCertificate` over gRPC with TLS.
//!
//! A request is answered in this order: the bearer token (`authorization: Bearer ...`)
//! proves a service account ([`Authenticator`]); the CSR is checked; it must ask for that
//! account's SPIFFE identity in the CA's trust domain; the lifetime is the request's
//! `validity_duration` within the policy; [`Ca::sign`] issues. Every refusal is counted by
//! reason ([`Ca::stats`]) and answered with a gRPC status: UNAUTHENTICATED for token
//! problems, PERMISSION_DENIED for another identity, INVALID_ARGUMENT for a bad CSR,
//! UNAVAILABLE when Kubernetes cannot be asked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};
use tracing::debug;

use crate::auth::Authenticator;
use crate::authority::{Ca, SignError};
use crate::csr::{MAX_CSR_BYTES, check_csr, csr_der_from_pem};
use crate::policy::{Reason, Refusal};

/// The generated protobuf messages and gRPC code (`proto/ca.proto`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod pb {
    tonic::include_proto!("istio.v1.auth");
}

use pb::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use pb::{IstioCertificateRequest, IstioCertificateResponse};

/// The largest request message: a CSR and a little metadata.
const MAX_MESSAGE_BYTES: usize = MAX_CSR_BYTES + 16 * 1024;
/// A request that takes longer (a slow TokenReview) is cut.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving certificate: {0}")]
    Certificate(#[from] SignError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

struct CaService {
    ca: Arc<Ca>,
    authenticator: Authenticator,
}

impl CaService {
    async fn create(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<IstioCertificateResponse, Refusal> {
        let token = bearer(&request)
            .ok_or_else(|| Refusal::new(Reason::MissingToken, "no authorization: Bearer token"))?;
        let account = self.authenticator.authenticate(&self.ca, token).await?;
        let message = request.into_inner();
        let der = csr_der_from_pem(&message.csr)?;
        let checked = check_csr(&der)?;
        let grant = self
            .ca
            .policy()
            .decide(&checked, &account, message.validity_duration)?;
        // `sign` checks the CSR again and that it asks for the granted identity: the
        // decision above is the one that counts, this is a second lock on the same door.
        let issued = self.ca.sign(&der, &grant.identity, grant.ttl)?;
        Ok(IstioCertificateResponse {
            cert_chain: issued.chain,
        })
    }
}

/// The token of `authorization: Bearer <token>` (the scheme in any case).
fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn status(refusal: &Refusal) -> Status {
    let code = match refusal.reason {
        Reason::MissingToken
        | Reason::InvalidToken
        | Reason::ExpiredToken
        | Reason::WrongAudience => Code::Unauthenticated,
        Reason::IdentityMismatch => Code::PermissionDenied,
        Reason::MalformedCsr | Reason::BadSan | Reason::CaRequested => Code::InvalidArgument,
        Reason::AuthUnavailable => Code::Unavailable,
        Reason::Internal => Code::Internal,
    };
    Status::new(
        code,
        format!("{}: {}", refusal.reason.as_str(), refusal.message),
    )
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        match self.create(request).await {
            Ok(response) => {
                self.ca.stats().record_issued();
                Ok(Response::new(response))
            }
            Err(refusal) => {
                self.ca.stats().record_refused(refusal.reason);
                debug!(reason = refusal.reason.as_str(), message = %refusal.message, "certificate refused");
                Err(status(&refusal))
            }
        }
    }
}

/// Serves CreateCertificate on `listener` over TLS, with a serving certificate the CA
/// issues itself for [`Ca::server_names`], until `shutdown` completes. Runs on the caller's
/// tokio runtime (spar-ca's binary, or spar-control's).
pub async fn serve(
    listener: TcpListener,
    ca: Arc<Ca>,
    authenticator: Authenticator,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (chain, key) = ca.serving_certificate()?;
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(chain, key));
    let service = IstioCertificateServiceServer::new(CaService { ca, authenticator })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    Server::builder()
        .tls_config(tls)?
        .timeout(REQUEST_TIMEOUT)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
