//! spar-telemetry: the proxy's counters and their Prometheus text.
//!
//! Every worker owns its own [`WorkerStats`]; a counter has exactly one writer
//! (the worker thread), so an increment is a relaxed load and store, never a
//! locked read-modify-write, and no cache line is shared between workers on
//! the request path. The control thread reads every worker's counters at
//! scrape time and sums them by name and labels ([`render_prometheus`]).
//!
//! Names follow Envoy's `/stats/prometheus` output (`envoy_http_downstream_rq_xx`,
//! `envoy_cluster_upstream_cx_connect_fail`, ...) so existing dashboards work;
//! what Envoy has no name for is `spar_`-prefixed.
//!
//! Not here: Istio's standard metrics (`istio_requests_total`, ...), access
//! logs and tracing: they come with the telemetry issue.

mod counters;
mod prometheus;

pub use counters::{
    ClusterStats, Counter, Flag, Gauge, HttpStats, ListenerStats, RbacStats, TcpStats, WorkerStats,
};
pub use prometheus::render_prometheus;
