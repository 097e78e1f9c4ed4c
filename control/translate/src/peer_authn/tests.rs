// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spar_istio::{Options, load};

use super::*;
use crate::{Note, ProxyKind, ProxyNode, Registry};

/// The policy for a sidecar in `default` labelled `app=reviews,version=v1`, with inbound
/// listeners on 9080 and 9081, and the notes.
fn resolve(yaml: &str) -> (Policy, Vec<Note>) {
    let loaded = load("t.yaml", yaml, &Options::default());
    assert!(
        loaded
            .messages
            .iter()
            .all(|m| m.level != spar_istio::Level::Error),
        "{:?}",
        loaded.messages
    );
    let registry = Registry::from_resources(&loaded.resources);
    let proxy = ProxyNode {
        kind: ProxyKind::Sidecar,
        namespace: "default".to_owned(),
        labels: [("app", "reviews"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    let mut cx = Cx::new(&loaded.resources, &registry, &proxy);
    let p = policy(&mut cx, &[9080, 9081]);
    (p, cx.notes)
}

/// A PeerAuthentication document; `extra` is YAML under `spec` (selector, portLevelMtls).
fn pa(ns: &str, name: &str, created: Option<&str>, mode: Option<&str>, extra: &str) -> String {
    let created = created
        .map(|c| format!("\n  creationTimestamp: \"{c}\""))
        .unwrap_or_default();
    let mtls = mode
        .map(|m| format!("\n  mtls: {{ mode: {m} }}"))
        .unwrap_or_default();
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
         name: {name}\n  namespace: {ns}{created}\nspec:{mtls}\n{extra}"
    )
}

const SELECT_REVIEWS: &str = "  selector: { matchLabels: { app: reviews } }\n";

fn messages(notes: &[Note]) -> Vec<String> {
    notes
        .iter()
        .map(|n| {
            let r = n.resource.as_ref().unwrap();
            format!("{}/{} {}: {}", r.namespace, r.name, n.path, n.message)
        })
        .collect()
}

#[test]
fn levels_override_and_unset_inherits() {
    use Mode::*;
    let mesh = |m| pa("istio-system", "mesh", None, Some(m), "");
    let ns = |m| pa("default", "ns", None, Some(m), "");
    let other_ns = pa("other", "ns", None, Some("DISABLE"), "");
    let wl = |m| pa("default", "wl", None, Some(m), SELECT_REVIEWS);
    let not_us = pa(
        "default",
        "ratings",
        None,
        Some("DISABLE"),
        "  selector: { matchLabels: { app: ratings } }\n",
    );
    let cases: Vec<(&str, Vec<String>, Mode)> = vec![
        ("nothing: PERMISSIVE", vec![], Permissive),
        ("mesh", vec![mesh("STRICT")], Strict),
        (
            "namespace over mesh",
            vec![mesh("STRICT"), ns("DISABLE")],
            Disable,
        ),
        (
            "another namespace's",
            vec![mesh("STRICT"), other_ns],
            Strict,
        ),
        ("namespace UNSET", vec![mesh("STRICT"), ns("UNSET")], Strict),
        (
            "workload over namespace",
            vec![mesh("DISABLE"), ns("STRICT"), wl("PERMISSIVE")],
            Permissive,
        ),
        (
            "workload UNSET",
            vec![mesh("DISABLE"), ns("STRICT"), wl("UNSET")],
            Strict,
        ),
        (
            "workload without mtls",
            vec![
                ns("STRICT"),
                pa("default", "wl", None, None, SELECT_REVIEWS),
            ],
            Strict,
        ),
        (
            "UNSET everywhere",
            vec![mesh("UNSET"), wl("UNSET")],
            Permissive,
        ),
        ("selector not matching", vec![ns("STRICT"), not_us], Strict),
        (
            "empty matchLabels is namespace-wide",
            vec![
                mesh("STRICT"),
                pa(
                    "default",
                    "empty",
                    None,
                    Some("DISABLE"),
                    "  selector: { matchLabels: {} }\n",
                ),
            ],
            Disable,
        ),
    ];
    for (name, docs, want) in cases {
        let (p, notes) = resolve(&docs.concat());
        assert_eq!(p.for_port(9080), want, "{name}");
        assert!(p.per_port.is_empty(), "{name}");
        assert!(notes.is_empty(), "{name}: {notes:?}");
    }
}

#[test]
fn port_level_overrides_for_its_port_and_unset_inherits_the_workload_mode() {
    let yaml = [
        pa("default", "ns", None, Some("STRICT"), ""),
        pa(
            "default",
            "wl",
            None,
            Some("UNSET"),
            "  selector: { matchLabels: { app: reviews } }\n  portLevelMtls:\n    \
             \"9080\": { mode: DISABLE }\n    \"9081\": { mode: UNSET }\n",
        ),
    ]
    .concat();
    let (p, notes) = resolve(&yaml);
    assert_eq!(p.for_port(9080), Mode::Disable);
    assert_eq!(p.for_port(9081), Mode::Strict);
    assert_eq!(p.for_port(9082), Mode::Strict);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn port_level_without_selector_is_ignored_with_a_note() {
    let yaml = pa(
        "default",
        "ns",
        None,
        Some("STRICT"),
        "  portLevelMtls:\n    \"9080\": { mode: DISABLE }\n",
    );
    let (p, notes) = resolve(&yaml);
    assert_eq!(p.for_port(9080), Mode::Strict);
    assert_eq!(
        messages(&notes),
        [
            "default/ns spec.portLevelMtls: ignored: port-level modes apply only with a selector (Istio)"
        ]
    );
}

#[test]
fn port_level_key_matching_no_listener_gets_a_note() {
    let yaml = pa(
        "default",
        "wl",
        None,
        Some("STRICT"),
        "  selector: { matchLabels: { app: reviews } }\n  portLevelMtls:\n    \
         \"19080\": { mode: DISABLE }\n",
    );
    let (p, notes) = resolve(&yaml);
    assert_eq!(p.for_port(9080), Mode::Strict);
    assert_eq!(
        messages(&notes),
        [
            "default/wl spec.portLevelMtls.19080: port 19080 is no inbound listener of this proxy \
             (ports are the Sidecar ingress port.number, as in Istio)"
        ]
    );
}

#[test]
fn oldest_wins_at_each_level_then_name() {
    let t1 = Some("2024-01-01T00:00:00Z");
    let t2 = Some("2024-06-01T00:00:00Z");
    let yaml = [
        pa("default", "a-new", t2, Some("DISABLE"), SELECT_REVIEWS),
        pa("default", "z-old", t1, Some("STRICT"), SELECT_REVIEWS),
    ]
    .concat();
    let (p, notes) = resolve(&yaml);
    assert_eq!(p.for_port(9080), Mode::Strict);
    assert_eq!(
        messages(&notes),
        [
            "default/a-new metadata.creationTimestamp: ignored: PeerAuthentication default/z-old is older and applies at \
             the same level (Istio keeps the oldest)"
        ]
    );
    // Same timestamp: the first name.
    let yaml = [
        pa("istio-system", "b", t1, Some("DISABLE"), ""),
        pa("istio-system", "a", t1, Some("STRICT"), ""),
    ]
    .concat();
    assert_eq!(resolve(&yaml).0.for_port(9080), Mode::Strict);
}

#[test]
fn a_selector_in_the_root_namespace_selects_nothing() {
    let yaml = pa("istio-system", "wl", None, Some("STRICT"), SELECT_REVIEWS);
    let (p, notes) = resolve(&yaml);
    assert_eq!(p.for_port(9080), Mode::Permissive);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].path, "spec.selector");
}

#[test]
fn secure_makes_the_chains_of_each_mode() {
    let plain = Listener {
        name: "0.0.0.0_9080".to_owned(),
        filter_chains: vec![FilterChain::default()],
        ..Default::default()
    };
    let shape = |mode| {
        let mut l = plain.clone();
        secure(&mut l, mode);
        let chains: Vec<(String, String, Vec<String>, bool)> = l
            .filter_chains
            .iter()
            .map(|c| {
                let m = c.filter_chain_match.clone().unwrap_or_default();
                (
                    c.name.clone(),
                    m.transport_protocol,
                    m.application_protocols,
                    c.transport_socket.is_some(),
                )
            })
            .collect();
        (l.listener_filters.len(), chains)
    };
    assert_eq!(
        shape(Mode::Disable),
        (0, vec![(String::new(), String::new(), vec![], false)])
    );
    assert_eq!(
        shape(Mode::Strict),
        (1, vec![("mtls".into(), "tls".into(), vec![], true)])
    );
    let alpn: Vec<String> = MESH_CLIENT_ALPN.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(
        shape(Mode::Permissive),
        (
            1,
            vec![
                ("mtls".into(), "tls".into(), alpn, true),
                ("plaintext".into(), "raw_buffer".into(), vec![], false),
            ]
        )
    );
}

#[test]
fn permissive_tcp_passes_other_tls_through_to_the_application() {
    let plain = Listener {
        name: "0.0.0.0_9000".to_owned(),
        filter_chains: vec![FilterChain::default()],
        ..Default::default()
    };
    let chains = |mode| {
        let mut l = plain.clone();
        secure_tcp(&mut l, mode);
        l.filter_chains
            .iter()
            .map(|c| {
                let m = c.filter_chain_match.clone().unwrap_or_default();
                (
                    c.name.clone(),
                    m.transport_protocol,
                    m.application_protocols.len(),
                    c.transport_socket.is_some(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        chains(Mode::Permissive),
        vec![
            ("mtls".into(), "tls".into(), MESH_CLIENT_ALPN.len(), true),
            ("plaintext".into(), "raw_buffer".into(), 0, false),
            // Any other TLS: relayed as bytes, not terminated.
            ("tls-passthrough".into(), "tls".into(), 0, false),
        ]
    );
    // STRICT still closes anything but mesh mTLS.
    assert_eq!(
        chains(Mode::Strict),
        vec![("mtls".into(), "tls".into(), 0, true)]
    );
}
