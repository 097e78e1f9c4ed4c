//! The generated mesh, as YAML text: Services with Deployments whose `spar.dev/endpoints`
//! annotation lists their endpoints (the local-mesh registry), one VirtualService and one
//! DestinationRule per service, and one Sidecar per namespace.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Every service listens on this port, and so does every endpoint.
pub const SERVICE_PORT: u16 = 8080;
/// The sidecars' explicit outbound listener (captureMode NONE), as in deploy/mesh.
pub const EGRESS_PORT: u16 = 15080;

/// The shape of the mesh.
#[derive(Clone, Debug)]
pub struct Shape {
    pub services: usize,
    pub endpoints_per_service: usize,
    /// VirtualServices, for the first this many services (at most one per service).
    pub virtual_services: usize,
    /// Services and proxies are spread over this many namespaces.
    pub namespaces: usize,
    /// Hosts each Sidecar imports: 0 for `*/*` (the full mesh), else the first N services.
    pub egress_hosts: usize,
}

impl Shape {
    /// Namespace of service (or proxy) `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("ns-{}", i % self.namespaces.max(1))
    }

    /// FQDN of service `i`.
    pub fn host(&self, i: usize) -> String {
        format!("svc-{i}.{}.svc.cluster.local", self.namespace(i))
    }

    /// Address of endpoint `j` of service `i`: distinct for every (i, j), in 10.0.0.0/8.
    pub fn endpoint(&self, i: usize, j: usize) -> Ipv4Addr {
        let n = i * self.endpoints_per_service + j + 1;
        Ipv4Addr::from(0x0A00_0000_u32.wrapping_add(u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Endpoints of service `i` with version v1 (the first half, rounded up); the rest are v2.
    fn v1_endpoints(&self) -> usize {
        self.endpoints_per_service.div_ceil(2)
    }

    /// Whether endpoint `j` is in the v1 subset.
    pub fn is_v1(&self, j: usize) -> bool {
        j < self.v1_endpoints()
    }
}

/// One generated file: a name for messages and its text.
#[derive(Clone, Debug)]
pub struct File {
    pub name: String,
    pub text: String,
}

/// The mesh as files, like a config directory: `services.yaml`, `routing.yaml`,
/// `sidecars.yaml`. `moved` replaces endpoint 0 of that service with that address
/// (the endpoint change).
pub fn files(shape: &Shape, moved: Option<(usize, Ipv4Addr)>) -> Vec<File> {
    vec![
        File {
            name: "services.yaml".to_owned(),
            text: services(shape, moved),
        },
        File {
            name: "routing.yaml".to_owned(),
            text: routing(shape),
        },
        File {
            name: "sidecars.yaml".to_owned(),
            text: sidecars(shape),
        },
    ]
}

// Writing to a String cannot fail: the results of `write!` below are ignored for that reason.

fn services(shape: &Shape, moved: Option<(usize, Ipv4Addr)>) -> String {
    let mut out = String::new();
    for i in 0..shape.services {
        let ns = shape.namespace(i);
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{ name: svc-{i}, namespace: {ns} }}\n\
             spec:\n  selector: {{ app: svc-{i} }}\n  ports: [{{ name: http, port: {SERVICE_PORT} }}]\n"
        );
        for version in ["v1", "v2"] {
            let addrs: Vec<String> = (0..shape.endpoints_per_service)
                .filter(|j| shape.is_v1(*j) == (version == "v1"))
                .map(|j| {
                    let ip = match moved {
                        Some((s, ip)) if s == i && j == 0 => ip,
                        _ => shape.endpoint(i, j),
                    };
                    format!("{ip}:{SERVICE_PORT}")
                })
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let _ = write!(
                out,
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}-{version}\n  \
                 namespace: {ns}\n  annotations: {{ spar.dev/endpoints: \"{}\" }}\nspec:\n  template:\n    \
                 metadata: {{ labels: {{ app: svc-{i}, version: {version} }} }}\n",
                addrs.join(",")
            );
        }
    }
    out
}

/// Per service: a VirtualService sending `end-user: jason` to v2 and splitting the rest
/// 90/10 between v1 and v2, and the DestinationRule defining those subsets.
fn routing(shape: &Shape) -> String {
    let mut out = String::new();
    for i in 0..shape.virtual_services.min(shape.services) {
        let ns = shape.namespace(i);
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{ name: svc-{i}, namespace: {ns} }}\nspec:\n  hosts: [svc-{i}]\n  http:\n  \
             - match: [{{ headers: {{ end-user: {{ exact: jason }} }} }}]\n    \
             route: [{{ destination: {{ host: svc-{i}, subset: v2 }} }}]\n  \
             - route:\n    - destination: {{ host: svc-{i}, subset: v1 }}\n      weight: 90\n    \
             - destination: {{ host: svc-{i}, subset: v2 }}\n      weight: 10\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{ name: svc-{i}, namespace: {ns} }}\nspec:\n  host: svc-{i}\n  subsets:\n  \
             - {{ name: v1, labels: {{ version: v1 }} }}\n  - {{ name: v2, labels: {{ version: v2 }} }}\n"
        );
    }
    out
}

/// One selector-less Sidecar per namespace: an explicit HTTP egress listener importing
/// every service (`*/*`) or the first `egress_hosts` ones.
fn sidecars(shape: &Shape) -> String {
    let hosts: Vec<String> = if shape.egress_hosts == 0 {
        vec!["\"*/*\"".to_owned()]
    } else {
        (0..shape.egress_hosts.min(shape.services))
            .map(|i| format!("\"{}/{}\"", shape.namespace(i), shape.host(i)))
            .collect()
    };
    let mut out = String::new();
    for n in 0..shape.namespaces.max(1) {
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n\
             metadata: {{ name: default, namespace: ns-{n} }}\nspec:\n  egress:\n  \
             - port: {{ number: {EGRESS_PORT}, protocol: HTTP, name: http }}\n    bind: 127.0.0.1\n    \
             captureMode: NONE\n    hosts: [{}]\n",
            hosts.join(", ")
        );
    }
    out
}
