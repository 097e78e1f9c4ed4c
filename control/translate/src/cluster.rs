//! Clusters: one per service port, plus one per DestinationRule subset (Istio's
//! `outbound|PORT|SUBSET|HOST`), shaped by the DestinationRule's traffic policy. A service's
//! clusters are EDS clusters over ADS, as Istio makes them: their endpoints travel as
//! ClusterLoadAssignments named by the cluster (so an endpoint change resends one
//! assignment, not the clusters). What the endpoints decide in the cluster itself stays
//! there: auto mTLS reads the endpoints' labels. Clusters routes want that no service gives
//! are STATIC and empty.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, LbConfig, LbPolicy, MaglevLbConfig,
    RingHashLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as PbOutlier, UpstreamConnectionOptions,
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Http1ProtocolOptions, HttpProtocolOptions as CoreHttpOptions, Metadata, SocketAddress,
    TcpKeepalive, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value, value};
use envoy_types::util::pack_any;
use spar_istio::Resource;
use spar_istio::model::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, SimpleLb, Subset, TrafficPolicy,
};

use crate::names::{covers, duration, fqdn, outbound_cluster, seconds};
use crate::registry::{Instance, Service, exported, selects};
use crate::upstream_tls::{Setting, ads_source, transport};
use crate::{Cx, ProxyNode, ROOT_NAMESPACE};

/// Istio's default connect timeout (MeshConfig `connectTimeout`).
const DEFAULT_CONNECT_TIMEOUT_SECS: i64 = 10;
/// Istio leaves Envoy's circuit breakers open: every threshold at u32::MAX.
const OPEN: u32 = u32::MAX;
/// Istio's ring size when `consistentHash` names no algorithm's own.
const DEFAULT_MIN_RING: u64 = 1024;
/// Envoy's endpoint metadata namespace for subset load balancing.
const LB_METADATA: &str = "envoy.lb";

/// A cluster a route refers to.
#[derive(Clone, Debug)]
pub(crate) struct Want {
    pub(crate) port: u32,
}

/// The DestinationRules that apply to a host for this proxy, merged as Istio merges them.
pub(crate) struct Dr<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) policy: Option<&'a TrafficPolicy>,
    /// (resource, index in its `subsets`, subset).
    pub(crate) subsets: Vec<(&'a Resource, usize, &'a Subset)>,
}

/// One group of settings in effect, with the resource and path it came from.
#[derive(Clone, Copy)]
struct Src<'a, T> {
    value: &'a T,
    resource: &'a Resource,
}

/// The traffic policy in effect for a (subset, port): subset over top level, field group by
/// field group, then the port-level settings for that port over both.
#[derive(Default)]
pub(crate) struct Effective<'a> {
    lb: Option<(Src<'a, LoadBalancerSettings>, String)>,
    pool: Option<(Src<'a, ConnectionPoolSettings>, String)>,
    outlier: Option<(Src<'a, OutlierDetection>, String)>,
    tls: Option<(Src<'a, ClientTlsSettings>, String)>,
    other: Vec<(&'a Resource, String, &'static str)>,
}

/// A DestinationRule the proxy sees, with its host as an FQDN.
pub(crate) type VisibleDr<'a> = (&'a Resource, &'a DestinationRule, String);

/// The DestinationRules exported to the proxy's namespace whose workload selector (if
/// any) selects it, each with its host made an FQDN, indexed by host: a lookup visits the
/// rules for that exact host and the wildcard ones, not every rule (the full mesh's
/// 1,000 rules were scanned for each of its 3,000 clusters).
pub(crate) struct VisibleDrs<'a> {
    /// In input order.
    all: Vec<VisibleDr<'a>>,
    /// Positions in `all` of the exact hosts, by host in ASCII lower case, ascending.
    exact: HashMap<String, Vec<usize>>,
    /// Positions in `all` of the wildcard hosts (`*`, `*.example.com`), ascending.
    wildcard: Vec<usize>,
}

impl<'a> VisibleDrs<'a> {
    pub(crate) fn new(all: Vec<VisibleDr<'a>>) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (i, (_, _, h)) in all.iter().enumerate() {
            if h.starts_with('*') {
                wildcard.push(i);
            } else {
                exact.entry(h.to_ascii_lowercase()).or_default().push(i);
            }
        }
        VisibleDrs {
            all,
            exact,
            wildcard,
        }
    }

    /// The rules whose host covers `host`, in input order: the same as filtering every rule
    /// by [`covers`] (an exact pattern covers only its own host, ignoring case).
    fn covering(&self, host: &str) -> Vec<&VisibleDr<'a>> {
        let exact = self
            .exact
            .get(host.to_ascii_lowercase().as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut at: Vec<usize> = exact
            .iter()
            .copied()
            .chain(
                self.wildcard
                    .iter()
                    .copied()
                    .filter(|&i| covers(&self.all[i].2, host)),
            )
            .collect();
        at.sort_unstable();
        at.into_iter().map(|i| &self.all[i]).collect()
    }
}

/// The DestinationRules exported to the proxy's namespace whose workload selector (if
/// any) selects it, each with its host made an FQDN.
pub(crate) fn visible_destination_rules<'a>(
    resources: &'a [Resource],
    proxy: &ProxyNode,
) -> VisibleDrs<'a> {
    let proxy_ns = proxy.namespace.as_str();
    let all = resources
        .iter()
        .filter_map(|r| match &r.spec {
            spar_istio::Spec::DestinationRule(d) => Some((r, d)),
            _ => None,
        })
        .filter(|(r, d)| exported(&d.export_to, &r.namespace, proxy_ns))
        .filter(|(r, d)| {
            match d
                .workload_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
            {
                None => true,
                Some(sel) => r.namespace == proxy_ns && selects(sel, &proxy.labels),
            }
        })
        .map(|(r, d)| (r, d, fqdn(&d.host, &r.namespace)))
        .collect();
    VisibleDrs::new(all)
}

/// Finds the DestinationRules for `host`: the proxy's namespace first (unless it is the root
/// namespace), then the service's, then the root namespace; within one namespace the most
/// specific host wins and DRs for that same host are merged (subsets by unique name, the
/// first traffic policy).
pub(crate) fn destination_rule<'a>(cx: &Cx<'a>, host: &str, service_ns: &str) -> Option<Dr<'a>> {
    let proxy_ns = cx.proxy.namespace.as_str();
    let candidates: Vec<&VisibleDr<'a>> = cx.dest_rules.covering(host);
    let mut order = Vec::new();
    if proxy_ns != ROOT_NAMESPACE {
        order.push(proxy_ns);
    }
    order.push(service_ns);
    order.push(ROOT_NAMESPACE);
    for ns in order {
        let in_ns: Vec<_> = candidates
            .iter()
            .filter(|(r, _, _)| r.namespace == ns)
            .collect();
        // Exact beats wildcard; a longer wildcard beats a shorter one.
        let Some(best) = in_ns
            .iter()
            .map(|(_, _, h)| h)
            .max_by_key(|h| (!h.starts_with('*'), h.len()))
        else {
            continue;
        };
        let mut dr: Option<Dr<'a>> = None;
        for (r, d, _) in in_ns.iter().filter(|(_, _, h)| h == best) {
            let dr = dr.get_or_insert(Dr {
                resource: r,
                policy: d.traffic_policy.as_ref(),
                subsets: Vec::new(),
            });
            if dr.policy.is_none() {
                dr.policy = d.traffic_policy.as_ref();
            }
            for (i, s) in d.subsets.iter().enumerate() {
                if !dr.subsets.iter().any(|(_, _, o)| o.name == s.name) {
                    dr.subsets.push((r, i, s));
                }
            }
        }
        return dr;
    }
    None
}

impl<'a> Dr<'a> {
    /// The policy in effect for `subset` ("" = none) on `port`: the subset's groups over
    /// the top level's, then the port-level settings (the subset's when it has any, else
    /// the top level's) over both, as Istio merges them.
    pub(crate) fn effective(&self, subset: &str, port: u32) -> Effective<'a> {
        let mut e = Effective::default();
        let mut levels = Vec::new();
        if let Some(p) = self.policy {
            e.apply(p, self.resource, "spec.trafficPolicy");
            levels.push((p, self.resource, "spec.trafficPolicy".to_owned()));
        }
        if let Some((r, i, s)) = self.subsets.iter().find(|(_, _, s)| s.name == subset)
            && let Some(p) = &s.traffic_policy
        {
            let at = format!("spec.subsets[{i}].trafficPolicy");
            e.apply(p, r, &at);
            if !p.port_level_settings.is_empty() {
                levels.push((p, r, at));
            }
        }
        if let Some((p, r, at)) = levels.pop() {
            e.apply_port(p, r, &at, port);
        }
        e
    }
}

impl<'a> Effective<'a> {
    fn apply(&mut self, p: &'a TrafficPolicy, r: &'a Resource, at: &str) {
        if let Some(lb) = &p.load_balancer {
            self.lb = Some((
                Src {
                    value: lb,
                    resource: r,
                },
                format!("{at}.loadBalancer"),
            ));
        }
        if let Some(cp) = &p.connection_pool {
            self.pool = Some((
                Src {
                    value: cp,
                    resource: r,
                },
                format!("{at}.connectionPool"),
            ));
        }
        if let Some(od) = &p.outlier_detection {
            self.outlier = Some((
                Src {
                    value: od,
                    resource: r,
                },
                format!("{at}.outlierDetection"),
            ));
        }
        if let Some(tls) = &p.tls {
            self.tls = Some((
                Src {
                    value: tls,
                    resource: r,
                },
                format!("{at}.tls"),
            ));
        }
        if p.tunnel.is_some() {
            self.other
                .push((r, format!("{at}.tunnel"), "tunnel settings"));
        }
        if p.proxy_protocol.is_some() {
            self.other.push((
                r,
                format!("{at}.proxyProtocol"),
                "PROXY protocol to upstreams",
            ));
        }
        if p.retry_budget.is_some() {
            self.other.push((
                r,
                format!("{at}.retryBudget"),
                "retry budgets from DestinationRule",
            ));
        }
    }

    fn apply_port(&mut self, p: &'a TrafficPolicy, r: &'a Resource, at: &str, port: u32) {
        for (i, pl) in p.port_level_settings.iter().enumerate() {
            if pl.port.as_ref().and_then(|s| s.number) != Some(port) {
                continue;
            }
            let at = format!("{at}.portLevelSettings[{i}]");
            if let Some(lb) = &pl.load_balancer {
                self.lb = Some((
                    Src {
                        value: lb,
                        resource: r,
                    },
                    format!("{at}.loadBalancer"),
                ));
            }
            if let Some(cp) = &pl.connection_pool {
                self.pool = Some((
                    Src {
                        value: cp,
                        resource: r,
                    },
                    format!("{at}.connectionPool"),
                ));
            }
            if let Some(od) = &pl.outlier_detection {
                self.outlier = Some((
                    Src {
                        value: od,
                        resource: r,
                    },
                    format!("{at}.outlierDetection"),
                ));
            }
            if let Some(tls) = &pl.tls {
                self.tls = Some((
                    Src {
                        value: tls,
                        resource: r,
                    },
                    format!("{at}.tls"),
                ));
            }
        }
    }

    /// `connectionPool.tcp.idleTimeout`: what Istio sets on a TCP proxy to one cluster.
    pub(crate) fn tcp_idle_timeout(&self) -> Option<envoy_types::pb::google::protobuf::Duration> {
        let (pool, _) = self.pool.as_ref()?;
        pool.value
            .tcp
            .as_ref()?
            .idle_timeout
            .as_deref()
            .and_then(duration)
    }

    /// Route hash policies for a consistent-hash load balancer.
    pub(crate) fn hash_policies(&self) -> Vec<HashPolicy> {
        let Some((lb, _)) = &self.lb else {
            return Vec::new();
        };
        let Some(ch) = &lb.value.consistent_hash else {
            return Vec::new();
        };
        use hash_policy::PolicySpecifier as P;
        let spec = if let Some(h) = &ch.http_header_name {
            P::Header(hash_policy::Header {
                header_name: h.clone(),
                ..Default::default()
            })
        } else if let Some(c) = &ch.http_cookie {
            P::Cookie(hash_policy::Cookie {
                name: c.name.clone(),
                path: c.path.clone().unwrap_or_default(),
                ttl: c.ttl.as_deref().and_then(duration),
                ..Default::default()
            })
        } else if ch.use_source_ip == Some(true) {
            P::ConnectionProperties(hash_policy::ConnectionProperties { source_ip: true })
        } else if let Some(q) = &ch.http_query_parameter_name {
            P::QueryParameter(hash_policy::QueryParameter { name: q.clone() })
        } else {
            return Vec::new();
        };
        vec![HashPolicy {
            terminal: false,
            policy_specifier: Some(spec),
        }]
    }
}

/// A cluster as built, with the assignment it takes its endpoints from when it is an EDS
/// cluster.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    pub(crate) cluster: Cluster,
    pub(crate) assignment: Option<ClusterLoadAssignment>,
}

/// Every cluster for `services` (each port, each subset), then the clusters routes want
/// that no service gave (unknown hosts or subsets: STATIC and empty, so requests get 503 as
/// in Istio).
pub(crate) fn build_all(cx: &mut Cx<'_>, services: &[&Service]) -> Vec<Built> {
    let mut out: HashMap<String, Built> = HashMap::new();
    for svc in services {
        build_service(cx, svc, &mut out);
    }
    let wanted: Vec<(String, Want)> = cx.wanted.clone().into_iter().collect();
    for (name, want) in wanted {
        if out.contains_key(&name) {
            continue;
        }
        let mut c = cluster(cx, &name, &[], &Effective::default());
        c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
        c.load_assignment = Some(load_assignment(&name, want.port, &[]));
        let built = Built {
            cluster: c,
            assignment: None,
        };
        out.insert(name, built);
    }
    out.into_values().collect()
}

/// The clusters of one service (each port, each subset) that `out` does not have yet (a
/// host's first service wins), EDS clusters with their assignments. The only part of a
/// translation that reads endpoints: the full translation and
/// [`crate::ScopeTranslation::with_endpoints`] both build them here.
pub(crate) fn build_service(cx: &mut Cx<'_>, svc: &Service, out: &mut HashMap<String, Built>) {
    let dr = destination_rule(cx, &svc.hostname, &svc.namespace);
    for port in &svc.ports {
        let mut subsets = vec![""];
        if let Some(dr) = &dr {
            subsets.extend(dr.subsets.iter().map(|(_, _, s)| s.name.as_str()));
        }
        for subset in subsets {
            let name = outbound_cluster(port.number, subset, &svc.hostname);
            if out.contains_key(&name) {
                continue;
            }
            let labels = dr.as_ref().and_then(|d| {
                d.subsets
                    .iter()
                    .find(|(_, _, s)| s.name == subset)
                    .map(|(_, _, s)| &s.labels)
            });
            let instances: Vec<&Instance> = svc
                .instances
                .iter()
                .filter(|i| labels.is_none_or(|l| selects(l, &i.labels)))
                .collect();
            let eff = dr
                .as_ref()
                .map(|d| d.effective(subset, port.number))
                .unwrap_or_default();
            let mut c = cluster(cx, &name, &instances, &eff);
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            c.eds_cluster_config = Some(eds_over_ads(&name));
            let built = Built {
                assignment: Some(load_assignment(&name, port.number, &instances)),
                cluster: c,
            };
            out.insert(name, built);
        }
    }
}

/// Istio's EDS settings: the assignment comes over the ADS stream, named `name` (the
/// cluster's own name, as `service_name`).
fn eds_over_ads(name: &str) -> EdsClusterConfig {
    EdsClusterConfig {
        eds_config: Some(ads_source()),
        service_name: name.to_owned(),
    }
}

/// A cluster shaped by `eff`, its transport socket following `instances` (auto mTLS);
/// without a discovery type or endpoints (the caller sets them).
fn cluster(cx: &mut Cx<'_>, name: &str, instances: &[&Instance], eff: &Effective<'_>) -> Cluster {
    let mut c = Cluster {
        name: name.to_owned(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: DEFAULT_CONNECT_TIMEOUT_SECS,
            nanos: 0,
        }),
        lb_policy: LbPolicy::LeastRequest as i32,
        ..Default::default()
    };
    let mut thresholds = Thresholds {
        max_connections: Some(UInt32Value { value: OPEN }),
        max_pending_requests: Some(UInt32Value { value: OPEN }),
        max_requests: Some(UInt32Value { value: OPEN }),
        max_retries: Some(UInt32Value { value: OPEN }),
        ..Default::default()
    };
    if let Some((lb, at)) = &eff.lb {
        load_balancer(cx, &mut c, lb.value, lb.resource, at);
    }
    if let Some((pool, at)) = &eff.pool {
        connection_pool(cx, &mut c, &mut thresholds, pool.value, pool.resource, at);
    }
    if let Some((od, at)) = &eff.outlier {
        outlier(cx, &mut c, od.value, od.resource, at);
    }
    let setting = eff.tls.as_ref().map(|(src, at)| Setting {
        tls: src.value,
        resource: src.resource,
        at: at.clone(),
    });
    // Istio's SNI for mesh traffic: the cluster name with `|` as `_.`.
    c.transport_socket = transport(cx, setting.as_ref(), instances, &name.replace('|', "_."));
    for (r, at, what) in &eff.other {
        cx.unsupported(r, at, what);
    }
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![thresholds],
        ..Default::default()
    });
    c
}

fn load_assignment(name: &str, port: u32, instances: &[&Instance]) -> ClusterLoadAssignment {
    let lb_endpoints = instances
        .iter()
        .filter_map(|i| {
            let endpoint_port = *i.ports.get(&port)?;
            let metadata = (!i.labels.is_empty()).then(|| Metadata {
                filter_metadata: HashMap::from([(
                    LB_METADATA.to_owned(),
                    Struct {
                        fields: i
                            .labels
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    Value {
                                        kind: Some(value::Kind::StringValue(v.clone())),
                                    },
                                )
                            })
                            .collect(),
                    },
                )]),
                ..Default::default()
            });
            Some(LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket(&i.ip, endpoint_port)),
                    ..Default::default()
                })),
                load_balancing_weight: i
                    .weight
                    .filter(|w| *w > 0)
                    .map(|value| UInt32Value { value }),
                metadata,
                ..Default::default()
            })
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A TCP socket address.
pub(crate) fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn load_balancer(
    cx: &mut Cx<'_>,
    c: &mut Cluster,
    lb: &LoadBalancerSettings,
    r: &Resource,
    at: &str,
) {
    match lb.simple {
        Some(SimpleLb::RoundRobin) => c.lb_policy = LbPolicy::RoundRobin as i32,
        Some(SimpleLb::Random) => c.lb_policy = LbPolicy::Random as i32,
        Some(SimpleLb::LeastConn | SimpleLb::LeastRequest | SimpleLb::Unspecified) | None => {}
        Some(SimpleLb::Passthrough) => cx.unsupported(
            r,
            &format!("{at}.simple"),
            "PASSTHROUGH load balancing (ORIGINAL_DST clusters)",
        ),
    }
    if let Some(ch) = &lb.consistent_hash {
        if let Some(m) = &ch.maglev {
            c.lb_policy = LbPolicy::Maglev as i32;
            c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: m
                    .table_size
                    .map(|value| envoy_types::pb::google::protobuf::UInt64Value { value }),
            }));
        } else {
            let min = ch
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(ch.minimum_ring_size)
                .unwrap_or(DEFAULT_MIN_RING);
            c.lb_policy = LbPolicy::RingHash as i32;
            c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: Some(envoy_types::pb::google::protobuf::UInt64Value {
                    value: min,
                }),
                ..Default::default()
            }));
        }
        if ch
            .http_cookie
            .as_ref()
            .is_some_and(|c| !c.attributes.is_empty())
        {
            cx.unsupported(
                r,
                &format!("{at}.consistentHash.httpCookie.attributes"),
                "cookie attributes",
            );
        }
    }
    if lb.locality_lb_setting.is_some() {
        cx.unsupported(
            r,
            &format!("{at}.localityLbSetting"),
            "locality load balancing settings",
        );
    }
    if lb.warmup_duration_secs.is_some() || lb.warmup.is_some() {
        cx.unsupported(r, &format!("{at}.warmup"), "slow-start warmup");
    }
}

fn connection_pool(
    cx: &mut Cx<'_>,
    c: &mut Cluster,
    t: &mut Thresholds,
    cp: &ConnectionPoolSettings,
    r: &Resource,
    at: &str,
) {
    let mut http_options = CoreHttpOptions::default();
    let mut need_http_options = false;
    let positive = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
    if let Some(tcp) = &cp.tcp {
        if let Some(n) = positive(tcp.max_connections) {
            t.max_connections = Some(UInt32Value { value: n });
        }
        if let Some(d) = tcp.connect_timeout.as_deref().and_then(duration) {
            c.connect_timeout = Some(d);
        }
        if let Some(k) = &tcp.tcp_keepalive {
            c.upstream_connection_options = Some(UpstreamConnectionOptions {
                tcp_keepalive: Some(TcpKeepalive {
                    keepalive_probes: k.probes.map(|value| UInt32Value { value }),
                    keepalive_time: k
                        .time
                        .as_deref()
                        .and_then(seconds)
                        .map(|value| UInt32Value { value }),
                    keepalive_interval: k
                        .interval
                        .as_deref()
                        .and_then(seconds)
                        .map(|value| UInt32Value { value }),
                }),
                ..Default::default()
            });
        }
        if let Some(d) = tcp.max_connection_duration.as_deref().and_then(duration) {
            http_options.max_connection_duration = Some(d);
            need_http_options = true;
        }
    }
    if let Some(http) = &cp.http {
        if let Some(n) = positive(http.http1_max_pending_requests) {
            t.max_pending_requests = Some(UInt32Value { value: n });
        }
        if let Some(n) = positive(http.http2_max_requests) {
            t.max_requests = Some(UInt32Value { value: n });
        }
        if let Some(n) = positive(http.max_retries) {
            t.max_retries = Some(UInt32Value { value: n });
        }
        if let Some(n) = positive(http.max_requests_per_connection) {
            http_options.max_requests_per_connection = Some(UInt32Value { value: n });
            need_http_options = true;
        }
        if let Some(d) = http.idle_timeout.as_deref().and_then(duration) {
            http_options.idle_timeout = Some(d);
            need_http_options = true;
        }
        if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            || http.use_client_protocol == Some(true)
        {
            cx.unsupported(
                r,
                &format!("{at}.http"),
                "HTTP/2 to upstreams (h2UpgradePolicy UPGRADE, useClientProtocol)",
            );
        }
        if http.max_concurrent_streams.is_some() || http.http2_keep_alive.is_some() {
            cx.unsupported(
                r,
                &format!("{at}.http"),
                "HTTP/2 upstream settings (maxConcurrentStreams, http2KeepAlive)",
            );
        }
    }
    if need_http_options {
        let options = HttpProtocolOptions {
            common_http_protocol_options: Some(http_options),
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(
                        explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                            Http1ProtocolOptions::default(),
                        ),
                    ),
                },
            )),
            ..Default::default()
        };
        c.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            pack_any(options),
        );
    }
}

fn outlier(cx: &mut Cx<'_>, c: &mut Cluster, od: &OutlierDetection, r: &Resource, at: &str) {
    let enforce = |n: u32| UInt32Value {
        value: if n > 0 { 100 } else { 0 },
    };
    let mut o = PbOutlier {
        interval: od.interval.as_deref().and_then(duration),
        base_ejection_time: od.base_ejection_time.as_deref().and_then(duration),
        max_ejection_percent: od
            .max_ejection_percent
            .and_then(|v| u32::try_from(v).ok())
            .map(|value| UInt32Value { value }),
        // Success-rate ejection is off in Istio's clusters.
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    };
    let five = od
        .consecutive_5xx_errors
        .or_else(|| od.consecutive_errors.and_then(|v| u32::try_from(v).ok()));
    if let Some(n) = five {
        o.consecutive_5xx = Some(UInt32Value { value: n });
        o.enforcing_consecutive_5xx = Some(enforce(n));
    }
    if let Some(n) = od.consecutive_gateway_errors {
        o.consecutive_gateway_failure = Some(UInt32Value { value: n });
        o.enforcing_consecutive_gateway_failure = Some(enforce(n));
    }
    if od.split_external_local_origin_errors == Some(true) {
        o.split_external_local_origin_errors = true;
        if let Some(n) = od.consecutive_local_origin_failures {
            o.consecutive_local_origin_failure = Some(UInt32Value { value: n });
            o.enforcing_consecutive_local_origin_failure = Some(enforce(n));
        }
    }
    if !od.outlier_detection_http_error_codes.is_empty() {
        cx.unsupported(
            r,
            &format!("{at}.outlierDetectionHttpErrorCodes"),
            "custom outlier error codes",
        );
    }
    c.outlier_detection = Some(o);
    // Istio: the panic threshold follows minHealthPercent (0, its default, turns panic off).
    let min_health = od.min_health_percent.unwrap_or(0).clamp(0, 100);
    c.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: Some(Percent {
            value: f64::from(min_health),
        }),
        ..Default::default()
    });
}
