use super::*;
use spar_istio::{Options, load};

fn registry(yaml: &str) -> Registry {
    Registry::from_resources(&load("test.yaml", yaml, &Options::default()).resources)
}

const BOOKINFO: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080, targetPort: 9080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: default
  annotations: { spar.dev/endpoints: "127.0.0.1:9081, 127.0.0.1:9082" }
spec:
  template:
    metadata: { labels: { app: reviews, version: v1 } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: reviews-v2, namespace: default }
spec:
  template:
    metadata:
      labels: { app: reviews, version: v2 }
      annotations: { spar.dev/address: "127.0.0.2" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: other, namespace: default }
spec:
  template:
    metadata: { labels: { app: ratings } }
"#;

#[test]
fn deployments_give_services_their_endpoints() {
    let reg = registry(BOOKINFO);
    let svc = reg.service("reviews.default.svc.cluster.local", "default");
    let Some(svc) = svc else {
        panic!("reviews missing: {:?}", reg.services());
    };
    assert_eq!(svc.ports[0].protocol, "HTTP");
    let got: Vec<(&str, u32, &str)> = svc
        .instances
        .iter()
        .map(|i| (i.ip.as_str(), i.ports[&9080], i.labels["version"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("127.0.0.1", 9081, "v1"),
            ("127.0.0.1", 9082, "v1"),
            ("127.0.0.2", 9080, "v2"),
        ]
    );
    assert!(reg.notes().is_empty(), "{:?}", reg.notes());
}

#[test]
fn service_entries_with_static_endpoints_and_notes_for_dns() {
    let reg = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: [api.example.com]
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: 8080 }]
  resolution: STATIC
  endpoints: [{ address: 10.0.0.1 }, { address: 10.0.0.2, ports: { http: 9090 } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: dns, namespace: default }
spec:
  hosts: [www.example.org]
  ports: [{ number: 443, name: https, protocol: HTTPS }]
  resolution: DNS
"#,
    );
    let Some(svc) = reg.service("api.example.com", "other") else {
        panic!("missing: {:?}", reg.services());
    };
    let ports: Vec<u32> = svc.instances.iter().map(|i| i.ports[&80]).collect();
    assert_eq!(ports, [8080, 9090]);
    assert_eq!(reg.notes().len(), 1, "{:?}", reg.notes());
    assert!(reg.notes()[0].message.contains("DNS resolution"));
}

#[test]
fn export_to_hides_services() {
    let reg = registry(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: a
  annotations: { networking.istio.io/exportTo: "." }
spec:
  ports: [{ port: 80 }]
"#,
    );
    assert!(reg.service("private.a.svc.cluster.local", "a").is_some());
    assert!(reg.service("private.a.svc.cluster.local", "b").is_none());
}

/// The per-host choice made the slow way (every service asked for, deduplicated by a
/// scan): what `listener::sidecar` did before [`Registry::visible`].
fn visible_by_scanning<'a>(reg: &'a Registry, ns: &str) -> Vec<&'a Service> {
    let mut visible: Vec<&Service> = Vec::new();
    for s in reg.services() {
        if visible.iter().any(|v| v.hostname == s.hostname) {
            continue;
        }
        let chosen = reg
            .services()
            .iter()
            .filter(|c| c.hostname.eq_ignore_ascii_case(&s.hostname) && c.visible_from(ns))
            .fold(None::<&Service>, |acc, c| match acc {
                None => Some(c),
                Some(a) if a.namespace != ns && c.namespace == ns => Some(c),
                Some(a) => Some(a),
            });
        visible.extend(chosen);
    }
    visible
}

#[test]
fn visible_services_one_per_host_as_service_picks_them() {
    let reg = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: a }
spec: { hosts: [api.example.com], ports: [{ number: 80, name: http }], resolution: STATIC }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: b }
spec: { hosts: [api.example.com], ports: [{ number: 80, name: http }], resolution: STATIC }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: only-b, namespace: b }
spec:
  hosts: [API.Example.com, b.example.com]
  exportTo: ["."]
  ports: [{ number: 80, name: http }]
  resolution: STATIC
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: a }
spec: { ports: [{ port: 9080 }] }
"#,
    );
    for ns in ["a", "b", "c"] {
        let fast: Vec<_> = reg
            .visible(ns)
            .iter()
            .map(|s| (&s.hostname, &s.namespace))
            .collect();
        let slow: Vec<_> = visible_by_scanning(&reg, ns)
            .iter()
            .map(|s| (&s.hostname, &s.namespace))
            .collect();
        assert_eq!(fast, slow, "from namespace {ns}");
    }
    assert_eq!(
        reg.service("API.EXAMPLE.COM", "a")
            .map(|s| s.namespace.as_str()),
        Some("a")
    );
}

fn slice(
    name: &str,
    service: &str,
    ports: &[(&str, u32)],
    eps: &[(&str, bool, &str)],
) -> EndpointSlice {
    EndpointSlice {
        namespace: "default".into(),
        name: name.into(),
        service: service.into(),
        ports: ports
            .iter()
            .map(|(n, p)| SlicePort {
                name: (*n).into(),
                port: *p,
            })
            .collect(),
        endpoints: eps
            .iter()
            .map(|(ip, ready, pod)| SliceEndpoint {
                addresses: vec![(*ip).into()],
                ready: *ready,
                pod: (!pod.is_empty()).then(|| (*pod).into()),
            })
            .collect(),
    }
}

#[test]
fn endpoint_slices_give_kubernetes_services_their_endpoints() {
    let resources = load(
        "test.yaml",
        r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }, { name: grpc, port: 9090 }]
---
apiVersion: v1
kind: Service
metadata: { name: plain, namespace: default }
spec:
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: default
  annotations: { spar.dev/endpoints: "127.0.0.9:1" }
spec:
  template:
    metadata: { labels: { app: reviews, version: v1 } }
"#,
        &Options::default(),
    )
    .resources;
    let mut endpoints = KubeEndpoints {
        slices: vec![
            slice(
                "reviews-b",
                "reviews",
                &[("http", 8081), ("grpc", 8091)],
                &[
                    ("10.0.0.2", true, "reviews-v2-x"),
                    ("10.0.0.3", false, "reviews-v2-y"),
                ],
            ),
            slice(
                "reviews-a",
                "reviews",
                &[("http", 8080)],
                &[("10.0.0.1", true, "reviews-v1-x"), ("no-ip", true, "")],
            ),
            // The same endpoint in a second slice counts once.
            slice(
                "reviews-c",
                "reviews",
                &[("http", 8080)],
                &[("10.0.0.1", true, "")],
            ),
            slice("plain-a", "plain", &[("", 8080)], &[("10.0.1.1", true, "")]),
            slice("orphan", "", &[("http", 1)], &[("10.9.9.9", true, "")]),
        ],
        pods: BTreeMap::new(),
    };
    for (pod, version) in [("reviews-v1-x", "v1"), ("reviews-v2-x", "v2")] {
        let labels: Labels = [("app", "reviews"), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        endpoints
            .pods
            .insert(("default".to_owned(), pod.to_owned()), labels);
    }
    let reg = Registry::from_kubernetes(&resources, &endpoints);
    let Some(reviews) = reg.service("reviews.default.svc.cluster.local", "default") else {
        panic!("reviews missing: {:?}", reg.services());
    };
    type Row<'a> = (&'a str, Vec<(u32, u32)>, Option<&'a str>);
    let got: Vec<Row<'_>> = reviews
        .instances
        .iter()
        .map(|i| {
            (
                i.ip.as_str(),
                i.ports.iter().map(|(a, b)| (*a, *b)).collect(),
                i.labels.get("version").map(String::as_str),
            )
        })
        .collect();
    // The Deployment's annotation is ignored; the not-ready endpoint is left out.
    assert_eq!(
        got,
        [
            ("10.0.0.1", vec![(9080, 8080)], Some("v1")),
            ("10.0.0.2", vec![(9080, 8081), (9090, 8091)], Some("v2")),
        ]
    );
    let Some(plain) = reg.service("plain.default.svc.cluster.local", "default") else {
        panic!("plain missing");
    };
    assert_eq!(plain.instances.len(), 1);
    assert_eq!(plain.instances[0].ports[&80], 8080);
    assert!(plain.instances[0].labels.is_empty());
    // Same input through the file source: the annotation, not the slices.
    let files = Registry::from_resources(&resources);
    let Some(reviews) = files.service("reviews.default.svc.cluster.local", "default") else {
        panic!("reviews missing");
    };
    assert_eq!(reviews.instances.len(), 1);
    assert_eq!(reviews.instances[0].ip, "127.0.0.9");
}
