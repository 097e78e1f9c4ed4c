//! The proxy's mesh identity: flags and counters; the identity itself serves the SDS
//! secrets `default` and `ROOTCA` to TLS contexts. spar-identity does the work (key, CSR, CA client, rotation,
//! rustls hooks); this file only wires it to the proxy.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use spar_identity::{Config, FailureReason, Identity, Source};

/// The flags that give the proxy a mesh identity (Istio's agent takes them from
/// `CA_ADDR`, the mounted root and token, and the pod's namespace and service account).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdentityArgs {
    /// The mesh CA, e.g. `https://127.0.0.1:15012` (spar-control's or spar-ca's). Without
    /// it the proxy has no mesh identity, and TLS contexts that name SDS secrets are refused.
    #[arg(long)]
    pub(crate) ca_address: Option<String>,
    /// PEM roots the CA's serving certificate chains to (the mesh root, `root-cert.pem`).
    #[arg(long, requires = "ca_address")]
    pub(crate) ca_root: Option<PathBuf>,
    /// The name in the CA's serving certificate; default: the host of --ca-address.
    #[arg(long, requires = "ca_address")]
    pub(crate) ca_server_name: Option<String>,
    /// The bearer token proving the service account (read at each request: it may rotate).
    #[arg(long, requires = "ca_address")]
    pub(crate) token_file: Option<PathBuf>,
    #[arg(long, default_value = "cluster.local")]
    pub(crate) trust_domain: String,
    /// The workload's namespace; default: the bootstrap node's NAMESPACE metadata.
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// The workload's service account; default: the node's SERVICE_ACCOUNT metadata, else
    /// `default`.
    #[arg(long)]
    pub(crate) service_account: Option<String>,
}

/// The identity and its rotation config, when `--ca-address` is given.
pub(crate) fn from_args(
    args: &IdentityArgs,
    node: Option<&envoy_types::pb::envoy::config::core::v3::Node>,
) -> anyhow::Result<Option<(Arc<Identity>, Config)>> {
    let Some(address) = &args.ca_address else {
        return Ok(None);
    };
    let root = args
        .ca_root
        .clone()
        .context("--ca-address needs --ca-root (the mesh root the CA's certificate chains to)")?;
    let token = args
        .token_file
        .clone()
        .context("--ca-address needs --token-file (the token the CA checks)")?;
    let meta = |key: &str| {
        use envoy_types::pb::google::protobuf::value::Kind;
        let v = node?.metadata.as_ref()?.fields.get(key)?;
        match &v.kind {
            Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let namespace = args
        .namespace
        .clone()
        .or_else(|| meta("NAMESPACE"))
        .context("no namespace: give --namespace or the node's NAMESPACE metadata")?;
    let service_account = args
        .service_account
        .clone()
        .or_else(|| meta("SERVICE_ACCOUNT"))
        .unwrap_or_else(|| "default".to_owned());
    let server_name = match &args.ca_server_name {
        Some(n) => n.clone(),
        None => host_of(address).with_context(|| format!("--ca-address {address:?}: no host"))?,
    };
    let config = Config::new(
        address.clone(),
        Source::File(root),
        server_name,
        Source::File(token),
        args.trust_domain.clone(),
        namespace,
        service_account,
    );
    let identity = Identity::for_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some((Arc::new(identity), config)))
}

/// `https://host:port/...` to `host` (brackets of an IPv6 literal removed).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Envoy's `SecretsConfigDump` for `/config_dump`: `default` (the chain; the key shown as
/// `[redacted]`, as Envoy does) and `ROOTCA` (the trust bundle), PEM as base64 inline bytes.
pub(crate) fn secrets_dump(identity: &Identity) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let view = identity.describe();
    let mut active = Vec::new();
    if let Some(cert) = &view.certificate {
        active.push(serde_json::json!({
            "name": "default",
            "version_info": cert.serial,
            "last_updated": cert.not_before,
            "secret": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": "default",
                "tls_certificate": {
                    "certificate_chain": { "inline_bytes": b64(&cert.chain_pem.concat()) },
                    "private_key": { "inline_string": "[redacted]" },
                },
            },
        }));
    }
    if !view.roots.is_empty() {
        active.push(serde_json::json!({
            "name": "ROOTCA",
            "version_info": view.trust_bundle_version.map(|v| v.to_string()),
            "secret": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": "ROOTCA",
                "validation_context": {
                    "trusted_ca": { "inline_bytes": b64(&view.roots.concat()) },
                },
            },
        }));
    }
    serde_json::json!({
        "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        "dynamic_active_secrets": active,
    })
}

/// Prometheus text: fetches by result, the certificate's expiry.
pub(crate) fn prometheus(identity: &Identity) -> String {
    let stats = identity.stats().snapshot();
    let mut out = String::from("# TYPE spar_identity_cert_fetches_total counter\n");
    let _ = writeln!(
        out,
        "spar_identity_cert_fetches_total{{result=\"ok\"}} {}",
        stats.successes
    );
    for (reason, n) in &stats.failures {
        let reason: &FailureReason = reason;
        let _ = writeln!(
            out,
            "spar_identity_cert_fetches_total{{result=\"{}\"}} {n}",
            reason.as_str()
        );
    }
    if let Some(current) = identity.current() {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = writeln!(
            out,
            "# TYPE spar_identity_cert_expiry_timestamp_seconds gauge\nspar_identity_cert_expiry_timestamp_seconds {}",
            secs(current.not_after)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn ca_host_from_its_address() {
        assert_eq!(
            host_of("https://127.0.0.1:15012").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            host_of("https://istiod.istio-system.svc:15012/").as_deref(),
            Some("istiod.istio-system.svc")
        );
        assert_eq!(host_of("https://[::1]:15012").as_deref(), Some("::1"));
        assert_eq!(host_of("localhost").as_deref(), Some("localhost"));
        assert_eq!(host_of("https://:15012"), None);
    }
}
