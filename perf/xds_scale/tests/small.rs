//! The benchmark, small, so that it keeps working: every proxy ACKs, the endpoint change
//! reaches every proxy. Only correctness is asserted, never timings.

use std::time::Duration;

use spar_xds_scale::mesh::Shape;
use spar_xds_scale::{Params, Report, run};

fn small(egress_hosts: usize) -> Params {
    Params {
        shape: Shape {
            services: 20,
            endpoints_per_service: 5,
            virtual_services: 20,
            namespaces: 3,
            egress_hosts,
        },
        proxies: 5,
        debounce: Duration::from_millis(10),
        timeout: Duration::from_secs(60),
    }
}

fn figure(report: &Report, name: &str) -> f64 {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no figure `{name}` in {report:?}"))
}

#[test]
fn full_mesh_syncs_and_the_endpoint_change_reaches_every_proxy() {
    // `run` fails unless every proxy ACKed every type and then applied the change.
    let report = run(&small(0)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(figure(&report, "resources"), 20.0 * 5.0 + 3.0);
    // Per service: the default cluster and the v1 and v2 subsets.
    assert_eq!(figure(&report, "clusters per proxy"), 60.0);
    assert_eq!(figure(&report, "virtual hosts per proxy"), 20.0);
    // Five sidecars in three namespaces, one Sidecar each: three translations.
    assert_eq!(figure(&report, "scopes"), 3.0);
    assert_eq!(figure(&report, "NACKs"), 0.0);
    // Only endpoints changed: one EDS update per proxy carrying the changed assignments
    // (the service's default cluster and its v1 subset), no cluster set, no listener.
    assert_eq!(figure(&report, "change: updates applied per proxy"), 1.0);
    assert_eq!(
        figure(&report, "change: cluster sets (CDS) applied per proxy"),
        0.0
    );
    assert_eq!(
        figure(&report, "change: CDS resources pushed per proxy"),
        0.0
    );
    assert_eq!(
        figure(&report, "change: LDS resources pushed per proxy"),
        0.0
    );
    assert_eq!(
        figure(&report, "change: EDS resources pushed per proxy"),
        2.0
    );
    assert!(figure(&report, "bytes per proxy: CDS") > 0.0);
    assert!(figure(&report, "bytes per proxy: EDS") > 0.0);
    assert!(figure(&report, "bytes per proxy: LDS (routes inline)") > 0.0);
}

#[test]
fn scoped_sidecars_get_only_their_egress_hosts() {
    let report = run(&small(4)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(figure(&report, "clusters per proxy"), 12.0);
    assert_eq!(figure(&report, "virtual hosts per proxy"), 4.0);
    assert_eq!(figure(&report, "NACKs"), 0.0);
}
