// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::rbac::v3::{permission, principal, rbac};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use spar_istio::model::Labels;
use spar_istio::{Options, load};

use super::*;
use crate::{ProxyKind, ProxyNode, Registry};

fn filters(yaml: &str, ns: &str, labels: &[(&str, &str)]) -> (Vec<Rbac>, Vec<crate::Note>) {
    with_cx(yaml, ns, labels, http_filters)
}

fn network(yaml: &str, ns: &str, labels: &[(&str, &str)]) -> (Vec<NetworkRbac>, Vec<crate::Note>) {
    with_cx(yaml, ns, labels, network_filters)
}

fn with_cx<T>(
    yaml: &str,
    ns: &str,
    labels: &[(&str, &str)],
    build: fn(&mut Cx<'_>) -> Vec<T>,
) -> (Vec<T>, Vec<crate::Note>) {
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
        namespace: ns.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Labels>(),
    };
    let mut cx = Cx::new(&loaded.resources, &registry, &proxy);
    let out = build(&mut cx);
    (out, cx.notes)
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: istio-system }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-readers, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/productpage"] } }]
    to: [{ operation: { methods: ["GET"], paths: ["/reviews/*"] } }]
  - from: [{ source: { namespaces: ["monitoring"], notIpBlocks: ["10.0.0.0/8"] } }]
    when: [{ key: "request.headers[x-token]", values: ["abc"] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: other-namespace, namespace: shop }
spec:
  action: DENY
  rules: [{}]
"#;

#[test]
fn policies_apply_by_namespace_and_selector_in_istio_order() {
    let (out, notes) = filters(POLICIES, "default", &[("app", "reviews")]);
    assert!(notes.is_empty(), "{notes:?}");
    let actions: Vec<i32> = out
        .iter()
        .map(|r| r.rules.as_ref().unwrap().action)
        .collect();
    assert_eq!(
        actions,
        [rbac::Action::Deny as i32, rbac::Action::Allow as i32],
        "DENY runs before ALLOW; the shop namespace's policy does not apply here"
    );
    let deny = out[0].rules.as_ref().unwrap();
    assert_eq!(
        deny.policies.keys().collect::<Vec<_>>(),
        ["ns[istio-system]-policy[deny-admin]-rule[0]"]
    );
    let allow = out[1].rules.as_ref().unwrap();
    // A protobuf map: no order of its own (Envoy sorts the names).
    let mut names: Vec<_> = allow.policies.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ns[default]-policy[reviews-readers]-rule[0]",
            "ns[default]-policy[reviews-readers]-rule[1]"
        ]
    );
    // Rule 0: the principal gains the spiffe scheme.
    let p0 = &allow.policies["ns[default]-policy[reviews-readers]-rule[0]"];
    let text = format!("{p0:?}");
    assert!(
        text.contains("spiffe://cluster.local/ns/default/sa/productpage"),
        "{text}"
    );
    assert!(
        text.contains(":method") && text.contains("/reviews/"),
        "{text}"
    );
    // Rule 1: namespace as a pattern, a negated IP block, a header condition.
    let p1 = format!(
        "{:?}",
        allow.policies["ns[default]-policy[reviews-readers]-rule[1]"]
    );
    assert!(p1.contains("spiffe://.*/ns/monitoring/.*"), "{p1}");
    assert!(p1.contains("NotId") && p1.contains("10.0.0.0"), "{p1}");
    assert!(p1.contains("x-token"), "{p1}");

    // A workload the selector does not pick gets only the mesh-wide DENY.
    let (out, _) = filters(POLICIES, "default", &[("app", "ratings")]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].rules.as_ref().unwrap().action,
        rbac::Action::Deny as i32
    );
}

#[test]
fn empty_rules_and_wildcards() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-nothing, namespace: default }
spec: { action: ALLOW }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: default }
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: wild, namespace: default }
spec:
  rules:
  - to: [{ operation: { hosts: ["*.example.com"], paths: ["*.png", "*"] } }]
    from: [{ source: { principals: ["*"] } }]
"#;
    let (out, _) = filters(yaml, "default", &[]);
    assert_eq!(out.len(), 1);
    let rules = out[0].rules.as_ref().unwrap();
    // allow-nothing has no rule: no policy (ALLOW with nothing matching denies all).
    assert!(rules.policies.keys().all(|k| !k.contains("allow-nothing")));
    let all = &rules.policies["ns[default]-policy[allow-all]-rule[0]"];
    assert!(matches!(
        all.permissions[0].rule,
        Some(permission::Rule::Any(true))
    ));
    assert!(matches!(
        all.principals[0].identifier,
        Some(principal::Identifier::Any(true))
    ));
    let wild = format!("{:?}", rules.policies["ns[default]-policy[wild]-rule[0]"]);
    assert!(wild.contains("Suffix(\".example.com\")"), "{wild}");
    assert!(wild.contains("Suffix(\".png\")"), "{wild}");
    assert!(
        wild.contains("ignore_case: true"),
        "hosts compare without case: {wild}"
    );
}

#[test]
fn unsupported_parts_fail_closed_and_are_reported() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: jwt-allow, namespace: default }
spec:
  rules:
  - from: [{ source: { requestPrincipals: ["issuer/subject"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: jwt-deny, namespace: default }
spec:
  action: DENY
  rules:
  - to: [{ operation: { paths: ["/private"] } }]
    when: [{ key: "request.auth.claims[group]", values: ["guest"] }]
"#;
    let (out, notes) = filters(yaml, "default", &[]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n.message.contains("unsupported")));
    // The ALLOW rule grants nothing (left out); the DENY rule still denies /private.
    let actions: Vec<(i32, usize)> = out
        .iter()
        .map(|r| {
            let r = r.rules.as_ref().unwrap();
            (r.action, r.policies.len())
        })
        .collect();
    assert_eq!(
        actions,
        [
            (rbac::Action::Deny as i32, 1),
            (rbac::Action::Allow as i32, 0)
        ]
    );
    let deny = format!("{:?}", out[0].rules.as_ref().unwrap().policies);
    assert!(deny.contains("/private"), "{deny}");
}

#[test]
fn spiffe_forms() {
    let exact = spiffe("cluster.local/ns/a/sa/b");
    assert_eq!(
        exact.match_pattern,
        Some(MatchPattern::Exact(
            "spiffe://cluster.local/ns/a/sa/b".into()
        ))
    );
    let prefix = spiffe("cluster.local/ns/a/*");
    assert_eq!(
        prefix.match_pattern,
        Some(MatchPattern::Prefix("spiffe://cluster.local/ns/a/".into()))
    );
    let suffix = spiffe("*/sa/b");
    assert_eq!(
        suffix.match_pattern,
        Some(MatchPattern::Suffix("/sa/b".into()))
    );
    assert_eq!(regex_escape("a.b*c"), "a\\.b\\*c");
    assert!(cidr("10.0.0.0/8").is_some());
    assert_eq!(cidr("10.1.2.3").unwrap().prefix_len.unwrap().value, 32);
    assert!(cidr("nope").is_none());
}

/// Istio's rule for HTTP-only fields on TCP: an ALLOW rule using one is left out, a DENY or
/// AUDIT rule matches without it; TCP-capable fields (principals, ports, source IPs, SNI)
/// are kept; HTTP filters keep everything.
#[test]
fn tcp_drops_allow_rules_with_http_fields_and_widens_deny_rules() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: readers, namespace: default }
spec:
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/sleep"] } }]
    to: [{ operation: { ports: ["9000"] } }]
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/web"] } }]
    to: [{ operation: { methods: ["GET"] } }]
  - from: [{ source: { requestPrincipals: ["iss/sub"] } }]
  - when: [{ key: "request.headers[x-user]", values: ["a"] }]
  - when: [{ key: "connection.sni", values: ["db.example.com"] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: default }
spec:
  action: DENY
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/intruder"] } }]
    to: [{ operation: { paths: ["/admin"], notHosts: ["x"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: watch, namespace: default }
spec:
  action: AUDIT
  rules:
  - to: [{ operation: { methods: ["POST"] } }]
"#;
    let (out, notes) = network(yaml, "default", &[]);
    let sets: Vec<(i32, Vec<String>)> = out
        .iter()
        .map(|f| {
            assert_eq!(f.stat_prefix, "tcp.", "Istio's network RBAC stat prefix");
            let r = f.rules.as_ref().unwrap();
            let mut names: Vec<String> = r.policies.keys().cloned().collect();
            names.sort();
            (r.action, names)
        })
        .collect();
    let name = |p: &str, i: usize| format!("ns[default]-policy[{p}]-rule[{i}]");
    assert_eq!(
        sets,
        [
            (rbac::Action::Log as i32, vec![name("watch", 0)]),
            (rbac::Action::Deny as i32, vec![name("no-admin", 0)]),
            (
                rbac::Action::Allow as i32,
                vec![name("readers", 0), name("readers", 4)]
            ),
        ],
        "ALLOW rules 1-3 use HTTP-only fields: left out"
    );
    // The DENY rule keeps its source and drops its paths and hosts: it denies the
    // intruder's every connection.
    let deny = format!("{:?}", out[1].rules.as_ref().unwrap().policies);
    assert!(deny.contains("sa/intruder"), "{deny}");
    assert!(
        !deny.contains("/admin") && !deny.contains(":authority"),
        "{deny}"
    );
    let audit = &out[0].rules.as_ref().unwrap().policies[&name("watch", 0)];
    assert!(
        matches!(
            audit.permissions[..],
            [Permission {
                rule: Some(permission::Rule::Any(true))
            }]
        ),
        "an AUDIT rule with only methods audits every connection: {audit:?}"
    );
    let allow = &out[2].rules.as_ref().unwrap().policies;
    assert!(format!("{:?}", allow[&name("readers", 0)]).contains("DestinationPort(9000)"));
    assert!(format!("{:?}", allow[&name("readers", 4)]).contains("db.example.com"));
    // Notes say which rules changed and why; none calls HTTP fields unsupported.
    let mut paths: Vec<(&str, bool)> = notes
        .iter()
        .map(|n| (n.path.as_str(), n.message.starts_with("left out")))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            ("spec.rules[0]", false),
            ("spec.rules[0]", false),
            ("spec.rules[1]", true),
            ("spec.rules[2]", true),
            ("spec.rules[3]", true),
        ],
        "{notes:?}"
    );
    assert!(
        notes.iter().all(|n| n.unsupported_feature().is_none()),
        "{notes:?}"
    );

    // The same policies as HTTP filters keep every rule (requestPrincipals aside).
    let (http, _) = filters(yaml, "default", &[]);
    let allow = http[2].rules.as_ref().unwrap();
    assert_eq!(allow.policies.len(), 4, "only the JWT rule is left out");
}
