//! Loading (documents, lines, kinds) and cross-resource analysis.

use crate::{Level, Options, Spec, analyze, analyze_sources, codes, load};

const BOOKINFO: &str = "\
# comment
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*.example.com']
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reviews}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews.example.com]
  gateways: [gw, missing-gw, mesh]
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v9
      weight: 10
  - match: [{uri: {prefix: /ratings}}]
    route:
    - destination:
        host: ratings
";

#[test]
fn documents_kinds_indices_and_lines() {
    let loaded = load("bookinfo.yaml", BOOKINFO, &Options::default());
    assert!(loaded.messages.is_empty(), "{:#?}", loaded.messages);
    let kinds: Vec<(usize, &str, usize)> = loaded
        .resources
        .iter()
        .map(|r| (r.doc_index, r.kind.as_str(), r.line))
        .collect();
    // The ServiceAccount (document 2) is not read.
    assert_eq!(
        kinds,
        [
            (0, "Gateway", 2),
            (1, "Service", 12),
            (3, "DestinationRule", 22),
            (4, "VirtualService", 29)
        ]
    );
    let vs = &loaded.resources[3];
    assert_eq!(vs.namespace, "default");
    assert_eq!(vs.line_of("spec.http[0].route[1].destination.subset"), 44);
    assert_eq!(vs.line_of("spec.http[0].route[1].destination"), 42);
    // A path with no line of its own takes its parent's.
    assert_eq!(
        vs.line_of("spec.http[0].route[1].destination.port.number"),
        42
    );
    assert!(matches!(loaded.resources[1].spec, Spec::Service(ref s) if s.ports[0].port == 9080));
}

#[test]
fn cross_resource_references_are_warnings() {
    let messages = analyze_sources([("bookinfo.yaml", BOOKINFO)], &Options::default());
    let got: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
    assert!(messages.iter().all(|m| m.level != Level::Error), "{got:#?}");
    let want = [
        "Warning [IST0101] (VirtualService default/reviews bookinfo.yaml:35) spec.gateways[1]: Referenced gateway not found: \"default/missing-gw\"",
        "Warning [IST0101] (VirtualService default/reviews bookinfo.yaml:44) spec.http[0].route[1].destination.subset: Referenced host+subset in destinationrule not found: \"reviews+v9\"",
        "Warning [IST0130] (VirtualService default/reviews bookinfo.yaml:46) spec.http[1]: VirtualService rule #1 not used (rule #0 has no match and catches every request)",
        "Warning [IST0101] (VirtualService default/reviews bookinfo.yaml:49) spec.http[1].route[0].destination.host: Referenced host not found: \"ratings\"",
    ];
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing {w}\nin {got:#?}");
    }
    assert_eq!(got.len(), 4, "{got:#?}");
}

#[test]
fn gateway_hosts_and_unreachable_rules() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['bookinfo/*.example.com']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: bookinfo}
spec:
  hosts: [a.example.com, other.org]
  gateways: [istio-system/gw]
  http:
  - route: [{destination: {host: a.example.com}}]
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: a.example.com}}]
";
    let messages = analyze_sources([("gw.yaml", text)], &Options::default());
    let codes_found: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.code.id, m.path.as_str()))
        .collect();
    assert!(
        codes_found.contains(&("IST0132", "spec.hosts[1]")),
        "{codes_found:?}"
    );
    assert!(
        !codes_found.contains(&("IST0132", "spec.hosts[0]")),
        "{codes_found:?}"
    );
    assert!(
        codes_found.contains(&("IST0130", "spec.http[1]")),
        "{codes_found:?}"
    );
}

#[test]
fn file_level_problems() {
    let cases: &[(&str, &str, &str)] = &[
        ("a: [1,\n", "SPR0001", "YAML syntax"),
        // The parser's end-of-input marker: refused, never read as the end of the file.
        ("a: 1\n\0\n---\nb: [\n", "SPR0001", "NUL character"),
        ("a: 1\na: 2\n", "SPR0001", "duplicate key"),
        ("- 1\n- 2\n", "SPR0002", "not a mapping"),
        ("metadata: {name: x}\n", "SPR0002", "no apiVersion or kind"),
        (
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: x}\nspec: {anything: 1}\n",
            "SPR0003",
            "not supported",
        ),
    ];
    for (text, code, needle) in cases {
        let loaded = load("f.yaml", text, &Options::default());
        assert!(
            loaded
                .messages
                .iter()
                .any(|m| m.code.id == *code && m.text.contains(needle)),
            "{text:?}: {:#?}",
            loaded.messages
        );
    }
    // Documents before a syntax error are still read.
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nb: [\n";
    let loaded = load("f.yaml", text, &Options::default());
    assert_eq!(loaded.resources.len(), 1);
    assert_eq!(loaded.messages[0].line, Some(6));
}

#[test]
fn nulls_versions_and_aliases() {
    // `key: null` is an unset field; every served version decodes the same.
    for version in ["v1alpha3", "v1beta1", "v1"] {
        let text = format!(
            "apiVersion: networking.istio.io/{version}\nkind: DestinationRule\nmetadata: {{name: d, namespace: prod}}\nspec:\n  host: a\n  trafficPolicy:\n  subsets:\n"
        );
        let loaded = load("d.yaml", &text, &Options::default());
        assert!(loaded.messages.is_empty(), "{:#?}", loaded.messages);
        assert_eq!(loaded.resources[0].namespace, "prod");
        assert!(analyze(&loaded.resources).is_empty());
    }
    // An alias bomb stops at the value cap instead of exhausting memory.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..8 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let loaded = load("bomb.yaml", &bomb, &Options::default());
    assert!(
        loaded
            .messages
            .iter()
            .any(|m| m.text.contains("expands to more than"))
    );
}

#[test]
fn json_shape() {
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: BLAH}}\n";
    let messages = analyze_sources([("p.yaml", text)], &Options::default());
    let json = serde_json::to_value(&messages).expect("serializes");
    assert_eq!(
        json[0],
        serde_json::json!({
            "level": "Error",
            "code": "IST0106",
            "resource": {"kind": "PeerAuthentication", "namespace": "default", "name": "p"},
            "file": "p.yaml",
            "line": 4,
            "path": "spec.mtls.mode",
            "text": "Unsupported value: \"BLAH\": supported values: \"UNSET\", \"DISABLE\", \"PERMISSIVE\", \"STRICT\"",
        })
    );
    assert_eq!(codes::ALL.len(), 9);
}

#[test]
fn host_and_subset_references_in_every_form() {
    // The indexed lookups find what a scan of every host and rule found: short names,
    // `name.namespace[.svc]`, any case, wildcard ServiceEntry hosts and wildcard rules.
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: ['*.example.com']
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: Reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: default}
spec:
  host: '*.example.com'
  subsets: [{name: blue, labels: {color: blue}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: refs, namespace: default}
spec:
  hosts: [refs]
  http:
  - match: [{uri: {prefix: /a}}]
    route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews.default}
    - destination: {host: reviews.default.svc}
    - destination: {host: REVIEWS.default.svc.cluster.local, subset: v1}
    - destination: {host: api.example.com, subset: blue}
    - destination: {host: api.example.com, subset: green}
    - destination: {host: ratings.default}
    - destination: {host: reviews, subset: v2}
";
    let messages = analyze_sources([("refs.yaml", yaml)], &Options::default());
    let mut got: Vec<String> = messages
        .iter()
        .filter(|m| m.code == codes::REFERENCED_RESOURCE_NOT_FOUND)
        .map(|m| m.path.clone())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "spec.http[0].route[5].destination.subset",
            "spec.http[0].route[6].destination.host",
            "spec.http[0].route[7].destination.subset",
        ]
        .map(String::from),
        "{messages:#?}"
    );
}

#[test]
fn split_leaves_files_with_a_bare_carriage_return_whole() {
    // YAML breaks lines at a lone CR; the split counts LFs, so its parts' lines would drift.
    assert!(crate::split("a: 1\r---\nb: 2\n").is_none());
    assert!(crate::split("a: \"x\ry\"\n---\nb: 2\n").is_none());
    let crlf = crate::split("a: 1\r\n---\r\nb: 2\r\n").expect("CRLF splits");
    assert_eq!(crlf.len(), 2);
    assert_eq!(crlf[1].0, 2);
}
