//! PeerAuthentication: the mutual TLS mode of a sidecar's inbound ports, and what each mode
//! makes of an inbound listener.
//!
//! The mode follows Istio (pilot/pkg/security/authn, `ComposePeerAuthentication`):
//! - a policy without a selector (or with empty `matchLabels`) in the root namespace is
//!   mesh-wide; in the proxy's namespace, namespace-wide; one whose selector matches the
//!   proxy's labels, in the proxy's namespace, is workload-specific. A selector in the root
//!   namespace selects nothing.
//! - each level overrides the one above it, unless its mode is UNSET (or absent): then it
//!   inherits. Nothing set at all is PERMISSIVE.
//! - several policies at one level: the oldest (creationTimestamp, then name) applies.
//! - `portLevelMtls` of the workload policy overrides the mode of a port, UNSET inheriting
//!   the workload's mode. Without a selector Istio ignores it; so do we, with a note.
//!   Ports are the Sidecar ingress `port.number`: Istio's workload port for an explicit
//!   ingress listener (`TargetPort: i.Port.Number`, listener_inbound.go).
//!
//! Gateways (router proxies) are not subject to PeerAuthentication; only sidecar inbound
//! listeners are built through here.
//!
//! On the wire ([`secure`]): DISABLE keeps the plaintext chain; STRICT accepts only mesh
//! mTLS; PERMISSIVE accepts mesh mTLS (TLS whose ALPN says `istio*`) and plaintext, with
//! the same connection manager behind both.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, common_tls_context,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use spar_istio::model::security::{MtlsMode, PeerAuthentication, PeerMtls};
use spar_istio::{Resource, Spec};

use crate::registry::selects;
use crate::upstream_tls::{sds, tls_socket};
use crate::{Cx, ROOT_NAMESPACE};

/// The mutual TLS mode of an inbound port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plaintext only.
    Disable,
    /// Mesh mTLS and plaintext.
    Permissive,
    /// Mesh mTLS only.
    Strict,
}

/// The modes in effect for one sidecar: its workload-wide mode and per-port overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    mode: Mode,
    per_port: BTreeMap<u32, Mode>,
}

impl Policy {
    /// The mode of the inbound listener on `port` (the Sidecar ingress `port.number`).
    pub(crate) fn for_port(&self, port: u32) -> Mode {
        self.per_port.get(&port).copied().unwrap_or(self.mode)
    }
}

/// A mode that says something; UNSET and absent inherit.
fn set(m: Option<&PeerMtls>) -> Option<Mode> {
    match m.and_then(|m| m.mode)? {
        MtlsMode::Unset => None,
        MtlsMode::Disable => Some(Mode::Disable),
        MtlsMode::Permissive => Some(Mode::Permissive),
        MtlsMode::Strict => Some(Mode::Strict),
    }
}

type Pa<'a> = (&'a Resource, &'a PeerAuthentication);

/// The policy for the proxy being translated (a sidecar). `ports` are its inbound listener
/// ports: a `portLevelMtls` key matching none of them gets a note, as the likely mistake is
/// keying by the application's port (`defaultEndpoint`) rather than the listener's.
pub(crate) fn policy(cx: &mut Cx<'_>, ports: &[u32]) -> Policy {
    let ns = cx.proxy.namespace.clone();
    let candidates: Vec<Pa<'_>> = cx
        .each(|s| match s {
            Spec::PeerAuthentication(p) => Some(p),
            _ => None,
        })
        .filter(|(r, _)| r.namespace == ns || r.namespace == ROOT_NAMESPACE)
        .collect();
    let (mut mesh, mut namespace, mut workload) = (Vec::new(), Vec::new(), Vec::new());
    for (r, pa) in candidates {
        let selector = pa
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .filter(|l| !l.is_empty());
        match selector {
            None => {
                if pa.port_level_mtls.is_some() {
                    cx.note(
                        r,
                        "spec.portLevelMtls",
                        "ignored: port-level modes apply only with a selector (Istio)",
                    );
                }
                if r.namespace == ROOT_NAMESPACE {
                    mesh.push((r, pa));
                } else {
                    namespace.push((r, pa));
                }
            }
            Some(l) if !selects(l, &cx.proxy.labels) => {}
            Some(_) if r.namespace == ROOT_NAMESPACE => cx.note(
                r,
                "spec.selector",
                "ignored: a PeerAuthentication with a selector in the root namespace \
                 selects no workload (Istio)",
            ),
            Some(_) => workload.push((r, pa)),
        }
    }
    let mesh = oldest(cx, mesh);
    let namespace = oldest(cx, namespace);
    let workload = oldest(cx, workload);
    let mut mode = Mode::Permissive;
    for (_, pa) in [mesh, namespace, workload].into_iter().flatten() {
        if let Some(m) = set(pa.mtls.as_ref()) {
            mode = m;
        }
    }
    let mut per_port = BTreeMap::new();
    if let Some((r, pa)) = workload {
        for (key, m) in pa.port_level_mtls.iter().flatten() {
            let at = format!("spec.portLevelMtls.{key}");
            let Ok(port) = key.parse::<u32>() else {
                cx.note(r, &at, "ignored: not a port number");
                continue;
            };
            if !ports.is_empty() && !ports.contains(&port) {
                cx.note(
                    r,
                    &at,
                    format!(
                        "port {port} is no inbound listener of this proxy (ports are the \
                         Sidecar ingress port.number, as in Istio)"
                    ),
                );
            }
            per_port.insert(port, set(Some(m)).unwrap_or(mode));
        }
    }
    Policy { mode, per_port }
}

/// The oldest of the policies at one level (creationTimestamp, then name, then namespace,
/// as Istio orders them); the others get a note saying they are ignored. Kubernetes writes
/// timestamps in UTC as `YYYY-MM-DDTHH:MM:SSZ`, which sort as text; a policy without one
/// counts as oldest, as Go's zero time does.
fn oldest<'a>(cx: &mut Cx<'_>, mut level: Vec<Pa<'a>>) -> Option<Pa<'a>> {
    level.sort_by_key(|&(r, _)| {
        (
            r.meta.creation_timestamp.as_deref(),
            r.meta.name.as_str(),
            r.namespace.as_str(),
        )
    });
    let mut it = level.into_iter();
    let first = it.next()?;
    for (r, _) in it {
        cx.note(
            r,
            "metadata.creationTimestamp",
            format!(
                "ignored: PeerAuthentication {}/{} is older and applies at the same level \
                 (Istio keeps the oldest)",
                first.0.namespace, first.0.meta.name
            ),
        );
    }
    Some(first)
}

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// ALPN values of Istio clients speaking mesh mTLS, which a PERMISSIVE listener tells from
/// other TLS by (ISTIO-WIRE §2.1: all of Istio's `istio*` values, HTTP and TCP).
const MESH_CLIENT_ALPN: [&str; 5] = [
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
    "istio",
    "istio-peer-exchange",
];

/// What an inbound HTTP listener negotiates with mesh clients. Never `istio`: it would be
/// chosen over `h2` and break HTTP/2 negotiation (Istio leaves it out for that reason).
const SERVER_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// What an inbound TCP listener negotiates. Istio's TCP listeners offer
/// `istio-peer-exchange`, `h2`, `http/1.1`; spar-proxy does no metadata exchange, so it
/// leaves `istio-peer-exchange` out (a client that chose it would send exchange bytes the
/// application would see) and puts `istio` first instead: an Istio TCP client offers only
/// `istio-peer-exchange` and `istio`, and rustls refuses a handshake with no protocol in
/// common where Envoy would go on without one.
const SERVER_TCP_ALPN: [&str; 3] = ["istio", "h2", "http/1.1"];

/// Turns an inbound listener's plaintext chain into the chains of `mode`: DISABLE keeps it;
/// STRICT makes it a mesh mTLS chain (plaintext then matches no chain and is closed);
/// PERMISSIVE puts a mesh mTLS chain, matched on TLS with an `istio*` ALPN, before it and
/// matches it on plaintext only. The TLS inspector fills in what the matches read.
pub(crate) fn secure(listener: &mut Listener, mode: Mode) {
    secure_with(listener, mode, &SERVER_ALPN, false);
}

/// [`secure`] for an inbound TCP proxy listener: the same chains, with the ALPN of
/// [`SERVER_TCP_ALPN`]; PERMISSIVE also passes other TLS (a client without a sidecar
/// talking TLS to an application that terminates it) through to the application, as
/// Istio's inbound passthrough chain does, rather than closing it.
pub(crate) fn secure_tcp(listener: &mut Listener, mode: Mode) {
    secure_with(listener, mode, &SERVER_TCP_ALPN, true);
}

/// [`secure`] with `server_alpn`; `tls_passthrough`: PERMISSIVE adds, after the mTLS and
/// plaintext chains, a chain per plaintext chain that takes other TLS as it is.
fn secure_with(listener: &mut Listener, mode: Mode, server_alpn: &[&str], tls_passthrough: bool) {
    let plaintext = std::mem::take(&mut listener.filter_chains);
    let mtls = |chain: &FilterChain, alpn: &[&str]| FilterChain {
        name: "mtls".to_owned(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: "tls".to_owned(),
            application_protocols: alpn.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        }),
        transport_socket: Some(server_tls(server_alpn)),
        ..chain.clone()
    };
    listener.filter_chains = match mode {
        Mode::Disable => plaintext,
        Mode::Strict => plaintext.iter().map(|c| mtls(c, &[])).collect(),
        Mode::Permissive => plaintext
            .iter()
            .map(|c| mtls(c, &MESH_CLIENT_ALPN))
            .chain(plaintext.iter().map(|c| FilterChain {
                name: "plaintext".to_owned(),
                filter_chain_match: Some(FilterChainMatch {
                    transport_protocol: "raw_buffer".to_owned(),
                    ..Default::default()
                }),
                ..c.clone()
            }))
            .chain(
                plaintext
                    .iter()
                    .filter(|_| tls_passthrough)
                    .map(|c| FilterChain {
                        name: "tls-passthrough".to_owned(),
                        filter_chain_match: Some(FilterChainMatch {
                            transport_protocol: "tls".to_owned(),
                            ..Default::default()
                        }),
                        ..c.clone()
                    }),
            )
            .collect(),
    };
    if mode != Mode::Disable {
        listener.listener_filters = vec![tls_inspector()];
    }
}

/// The TLS inspector: what filter chain matches on SNI, transport or ALPN need first.
pub(crate) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// The server side of mesh mTLS: the proxy's certificate (SDS `default`), clients must
/// present one that the mesh trust bundle (SDS `ROOTCA`) verifies.
fn server_tls(alpn: &[&str]) -> TransportSocket {
    let context = DownstreamTlsContext {
        require_client_certificate: Some(BoolValue { value: true }),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: alpn.iter().map(|a| (*a).to_owned()).collect(),
            tls_certificate_sds_secret_configs: vec![sds("default")],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(
                    "ROOTCA",
                )),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    tls_socket(pack_any(context))
}

#[cfg(test)]
mod tests;
