//! What spar-proxy cannot do yet, as analyze warnings (SPR0004): the input is translated
//! for every proxy it implies (each Gateway's selector as a gateway, each Deployment's pod
//! labels as a sidecar, a plain sidecar in each namespace) and each of the translation's
//! notes is reported once, on the resource and field it comes from. A proxy would refuse
//! nothing here: the translation leaves these parts out of what it sends (the proxy NACKs
//! anything else it cannot enforce).

use std::collections::BTreeSet;

use spar_istio::{Message, Resource, Spec, codes};
use spar_translate::{Note, ProxyKind, ProxyNode, Registry, translate};

/// The notes of every implied proxy's translation, as messages, without duplicates.
pub(crate) fn messages(resources: &[Resource]) -> Vec<Message> {
    let registry = Registry::from_resources(resources);
    let mut notes: BTreeSet<Note> = BTreeSet::new();
    for proxy in proxies(resources) {
        notes.extend(translate(resources, &registry, &proxy).notes);
    }
    notes.iter().filter_map(|n| message(resources, n)).collect()
}

/// Gateways by selector, sidecars by pod labels, and a label-less sidecar per namespace.
fn proxies(resources: &[Resource]) -> Vec<ProxyNode> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut add = |kind: ProxyKind, namespace: &str, labels: spar_istio::model::Labels| {
        let key = (
            matches!(kind, ProxyKind::Router),
            namespace.to_owned(),
            labels.clone(),
        );
        if seen.insert(key) {
            out.push(ProxyNode {
                kind,
                namespace: namespace.to_owned(),
                labels,
            });
        }
    };
    for r in resources {
        match &r.spec {
            Spec::Gateway(g) => add(
                ProxyKind::Router,
                &r.namespace,
                g.selector.clone().unwrap_or_default(),
            ),
            Spec::Deployment(d) => add(
                ProxyKind::Sidecar,
                &r.namespace,
                d.template.metadata.labels.clone(),
            ),
            _ => {}
        }
        add(ProxyKind::Sidecar, &r.namespace, Default::default());
    }
    out
}

/// The note as a warning on its resource; None for what is not about the input (a proxy's
/// own mode), for what other messages say already (a missing host, an unsupported kind).
fn message(resources: &[Resource], note: &Note) -> Option<Message> {
    let feature = note.unsupported_feature()?;
    let want = note.resource.as_ref()?;
    let r = resources.iter().find(|r| r.reference() == *want)?;
    if r.spec == Spec::Unsupported {
        return None;
    }
    let text = format!("{feature}: not supported by spar-proxy yet, left out");
    Some(r.message(codes::UNSUPPORTED_BY_PROXY, &note.path, text))
}
