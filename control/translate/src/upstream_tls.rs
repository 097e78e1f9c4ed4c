//! What a cluster speaks to its endpoints: Istio mTLS (DestinationRule `ISTIO_MUTUAL`, or
//! auto mTLS to endpoints whose workloads carry `security.istio.io/tlsMode: istio`) as an
//! UpstreamTlsContext naming the SDS secrets `default` and `ROOTCA` that the proxy serves
//! from its identity, with the server identities the client must see; or plaintext.

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, TransportSocket, config_source,
    transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
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
        Some(ClientTlsMode::Simple | ClientTlsMode::Mutual) => {
            cx.unsupported(
                s.resource,
                &format!("{}.mode", s.at),
                "TLS origination with SIMPLE and MUTUAL (clusters stay plaintext)",
            );
            None
        }
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

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ConfigSource {
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                AggregatedConfigSource::default(),
            )),
            resource_api_version: ApiVersion::V3 as i32,
            ..Default::default()
        }),
    }
}

/// Istio mTLS: the proxy's certificate, the mesh trust bundle, the expected identities.
fn mesh(sni: &str, sans: Vec<String>) -> TransportSocket {
    let matchers = sans
        .into_iter()
        .map(|uri| SubjectAltNameMatcher {
            san_type: subject_alt_name_matcher::SanType::Uri as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(uri)),
                ..Default::default()
            }),
            ..Default::default()
        })
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
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}
