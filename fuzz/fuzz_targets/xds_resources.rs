//! Arbitrary protobuf bytes as the resources a control plane pushes (a Cluster, a Listener
//! or a ClusterLoadAssignment, chosen by the first byte), through what spar-proxy does with
//! them: the assignment check and the compile with an ADS bootstrap. A control plane's bad
//! resource must be a NACK with a message, never a panic.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use spar_config::{Bootstrap, Format, Xds, check_assignment, load_bootstrap_str};

const BOOTSTRAP: &str = "
dynamic_resources:
  ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 15010 } } } }] }]
";

fn bootstrap() -> &'static Bootstrap {
    static B: OnceLock<Bootstrap> = OnceLock::new();
    B.get_or_init(|| load_bootstrap_str(BOOTSTRAP, "fuzz.yaml", Format::Yaml).expect("bootstrap"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let mut clusters = Vec::new();
    let mut listeners = Vec::new();
    let mut assignments = BTreeMap::new();
    let mut sink = String::new();
    match kind % 3 {
        0 => match Cluster::decode(bytes) {
            Ok(c) => clusters.push(c),
            Err(_) => return,
        },
        1 => match Listener::decode(bytes) {
            Ok(l) => listeners.push(l),
            Err(_) => return,
        },
        _ => match ClusterLoadAssignment::decode(bytes) {
            Ok(la) => {
                if let Err(e) = check_assignment(&la) {
                    let _ = write!(sink, "{e}");
                }
                // An EDS cluster naming it, so the compile reads it.
                let mut c = Cluster {
                    name: la.cluster_name.clone(),
                    ..Default::default()
                };
                c.cluster_discovery_type = Some(
                    envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType::Type(
                        envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType::Eds as i32,
                    ),
                );
                c.eds_cluster_config = Some(
                    envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig {
                        eds_config: Some(envoy_types::pb::envoy::config::core::v3::ConfigSource {
                            config_source_specifier: Some(
                                envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier::Ads(
                                    Default::default(),
                                ),
                            ),
                            ..Default::default()
                        }),
                        service_name: String::new(),
                    },
                );
                clusters.push(c);
                assignments.insert(la.cluster_name.clone(), la);
            }
            Err(_) => return,
        },
    }
    let xds = Xds {
        clusters: &clusters,
        listeners: &listeners,
        assignments: &assignments,
    };
    if let Err(e) = bootstrap().compile_xds(xds, 1) {
        let _ = write!(sink, "{e}");
    }
});
