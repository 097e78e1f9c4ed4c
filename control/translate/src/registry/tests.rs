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
