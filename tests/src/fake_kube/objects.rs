//! Objects for the fake API server (Service, Pod, EndpointSlice as a cluster's controllers
//! would write them) and spar-control started on it.

use serde_json::{Value, json};

/// A Kubernetes Service `name` in `namespace` selecting `app: name`, with named ports.
pub fn service(name: &str, namespace: &str, ports: &[(&str, u16)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"selector": {"app": name}, "ports": ports, "type": "ClusterIP",
                    "clusterIP": "10.96.0.10"},
           "status": {"loadBalancer": {}}})
}

/// A Pod `name` with `labels` (what EndpointSlices' targetRefs name).
pub fn pod(name: &str, namespace: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "echo"}]},
           "status": {"phase": "Running", "podIP": "127.0.0.1"}})
}

/// An EndpointSlice `name` of Service `service` with one port (`port_name`, `port`) and one
/// ready endpoint per `(ip, pod)`.
pub fn endpoint_slice(
    name: &str,
    namespace: &str,
    service: &str,
    port_name: &str,
    port: u16,
    endpoints: &[(&str, &str)],
) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod)| {
            json!({"addresses": [ip], "conditions": {"ready": true, "serving": true},
                   "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4",
           "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
           "endpoints": endpoints})
}

/// spar-control with `--source kubernetes` on the API server at `api_url`, serving xDS on
/// 127.0.0.1:`xds` and monitoring on 127.0.0.1:`monitoring`.
pub fn spar_control(api_url: &str, xds: u16, monitoring: u16) -> crate::proc::Process {
    let child = std::process::Command::new(crate::proc::bin("spar-control"))
        .args(["--source", "kubernetes", "--kube-api-server", api_url])
        .args(["--xds-address", &format!("127.0.0.1:{xds}")])
        .args(["--monitoring-address", &format!("127.0.0.1:{monitoring}")])
        .args(["-l", "warn"])
        .args(["--ca-address", "127.0.0.1:0"])
        .arg("--ca-dir")
        .arg(crate::proc::scratch_dir("kube-control-ca"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start spar-control");
    crate::proc::Process { child }
}
