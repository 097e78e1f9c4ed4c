//! What a cluster speaks to its endpoints: Istio mTLS (DestinationRule `ISTIO_MUTUAL`, or
//! auto mTLS to endpoints whose workloads carry `security.istio.io/tlsMode: istio`) as an
//! UpstreamTlsContext naming the SDS secrets `default` and `ROOTCA` that the proxy serves
//! from its identity, with the server identities the client must see; TLS origination
//! with files (`SIMPLE`, `MUTUAL`); or plaintext.

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, TransportSocket, config_source,
    data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use spar_istio::Resource;
use spar_istio::model::destination_rule::{ClientTlsMode, ClientTlsSettings};

use crate::Cx;
use crate::registry::Instance;

/// The mesh's trust domain (Istio's default; spar-control's `--trust-domain` default).
pub(crate) const TRUST_DOMAIN: &str = "cluster.local";

/// Istio's ALPN for an HTTP/1.1 upstream in the mesh: the server's PERMISSIVE chain
/// matches on the `istio` values, and negotiates `http/1.1`.
const MESH_ALPN: [&str; 3] = ["istio-http/1.1", "istio", "http/1.1"];

/// The DestinationRule `tls` in effect for a cluster, with where it came from.
pub(crate) struct Setting<'a> {
    pub(crate) tls: &'a ClientTlsSettings,
    pub(crate) resource: &'a Resource,
    pub(crate) at: String,
}

/// The cluster's transport socket: `None` for plaintext.
pub(crate) fn transport(
    cx: &mut Cx<'_>,
    setting: Option<&Setting<'_>>,
    instances: &[&Instance],
    sni: &str,
) -> Option<TransportSocket> {
    let Some(s) = setting else {
        // Auto mTLS: every endpoint has a sidecar.
        let meshed = !instances.is_empty() && instances.iter().all(|i| i.meshed());
        return meshed.then(|| mesh(sni, identities(instances)));
    };
    match s.tls.mode {
        None | Some(ClientTlsMode::Disable) => None,
        Some(ClientTlsMode::IstioMutual) => {
            for (field, set) in [
                ("clientCertificate", s.tls.client_certificate.is_some()),
                ("privateKey", s.tls.private_key.is_some()),
                ("caCertificates", s.tls.ca_certificates.is_some()),
                ("credentialName", s.tls.credential_name.is_some()),
            ] {
                if set {
                    cx.unsupported(
                        s.resource,
                        &format!("{}.{field}", s.at),
                        "certificates with ISTIO_MUTUAL (the mesh identity is used)",
                    );
                }
            }
            let sans = if s.tls.subject_alt_names.is_empty() {
                identities(instances)
            } else {
                s.tls.subject_alt_names.clone()
            };
            let sni = s.tls.sni.as_deref().unwrap_or(sni);
            Some(mesh(sni, sans))
        }
        Some(mode @ (ClientTlsMode::Simple | ClientTlsMode::Mutual)) => {
            origination(cx, s, mode == ClientTlsMode::Mutual)
        }
    }
}

/// SIMPLE and MUTUAL: TLS to a server outside the mesh, with the files the
/// DestinationRule names (the proxy reads them). Without `caCertificates` the server is
/// not verified only when `insecureSkipVerify` says so: spar-proxy has no system trust
/// store, so anything else is left out (the cluster stays plaintext) and reported.
fn origination(cx: &mut Cx<'_>, s: &Setting<'_>, mutual: bool) -> Option<TransportSocket> {
    let t = s.tls;
    let mut missing = |field: &str, what: &str| {
        cx.unsupported(s.resource, &format!("{}.{field}", s.at), what);
    };
    if t.credential_name.is_some() {
        missing(
            "credentialName",
            "certificates from Kubernetes secrets (credentialName); give file paths",
        );
        return None;
    }
    if t.ca_crl.is_some() {
        missing("caCrl", "certificate revocation lists");
        return None;
    }
    let skip = t.insecure_skip_verify == Some(true);
    if t.ca_certificates.is_none() && !skip {
        missing(
            "caCertificates",
            "verifying the server with the system trust store (give caCertificates, or insecureSkipVerify)",
        );
        return None;
    }
    let file = |path: &str| DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..Default::default()
    };
    let mut common = CommonTlsContext::default();
    if mutual {
        let (Some(cert), Some(key)) = (&t.client_certificate, &t.private_key) else {
            missing(
                "clientCertificate",
                "MUTUAL without clientCertificate and privateKey",
            );
            return None;
        };
        common.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        }];
    }
    if let (Some(ca), false) = (&t.ca_certificates, skip) {
        let matchers = t
            .subject_alt_names
            .iter()
            .map(|name| {
                let kind = if name.contains("://") {
                    subject_alt_name_matcher::SanType::Uri
                } else {
                    subject_alt_name_matcher::SanType::Dns
                };
                san(kind, name.clone())
            })
            .collect();
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(ca)),
                    match_typed_subject_alt_names: matchers,
                    ..Default::default()
                },
            ),
        );
    }
    let context = UpstreamTlsContext {
        sni: t.sni.clone().unwrap_or_default(),
        common_tls_context: Some(common),
        ..Default::default()
    };
    Some(tls_socket(pack_any(context)))
}

fn san(kind: subject_alt_name_matcher::SanType, value: String) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: kind as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(value)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The SPIFFE identities of the endpoints' workloads, sorted, without duplicates; empty
/// when one is unknown (then any identity from the mesh's trust bundle is accepted, as
/// Istio does without service accounts).
fn identities(instances: &[&Instance]) -> Vec<String> {
    let mut out = Vec::new();
    for i in instances {
        let Some((ns, sa)) = &i.identity else {
            return Vec::new();
        };
        out.push(format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}"));
    }
    out.sort();
    out.dedup();
    out
}

/// An SDS secret the proxy serves itself, from its identity (`default`, `ROOTCA`), named
/// over the ADS stream as Istio's sidecars name it. Shared with the inbound listeners.
pub(crate) fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads_source()),
    }
}

/// A config source naming the ADS stream (v3): where SDS secrets and EDS assignments come
/// from.
pub(crate) fn ads_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource::default(),
        )),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// Istio mTLS: the proxy's certificate, the mesh trust bundle, the expected identities.
fn mesh(sni: &str, sans: Vec<String>) -> TransportSocket {
    let matchers = sans
        .into_iter()
        .map(|uri| san(subject_alt_name_matcher::SanType::Uri, uri))
        .collect();
    let context = UpstreamTlsContext {
        sni: sni.to_owned(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: MESH_ALPN.iter().map(|s| (*s).to_owned()).collect(),
            tls_certificate_sds_secret_configs: vec![sds("default")],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::CombinedValidationContext(
                    common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: matchers,
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds("ROOTCA")),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    tls_socket(pack_any(context))
}

/// Envoy's TLS transport socket with `context` (an Upstream or DownstreamTlsContext).
/// Shared with the inbound listeners.
pub(crate) fn tls_socket(context: Any) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(context)),
    }
}

#[cfg(test)]
mod tests;
