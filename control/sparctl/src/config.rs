//! `sparctl proxy-config clusters|listeners|routes|endpoints|secrets`: what one proxy runs,
//! read from its admin `/config_dump` (spar-proxy and Envoy give the same shape for static and
//! xDS-merged resources), printed in istioctl's table shapes.

use std::process::ExitCode;

use serde_json::Value;

use crate::status::fetch;

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    Clusters,
    Listeners,
    Routes,
    Endpoints,
    /// The SDS secrets (`default`, `ROOTCA`): istioctl's `proxy-config secret`.
    #[value(alias = "secret")]
    Secrets,
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // a CLI: printing is its job
pub(crate) fn run(kind: Kind, admin: &str) -> ExitCode {
    match fetch(admin, "/config_dump") {
        Ok(dump) => {
            print!("{}", render(kind, &dump));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sparctl: cannot read {admin}/config_dump: {e}");
            ExitCode::from(2)
        }
    }
}

/// The table for `kind` from a `/config_dump` body.
pub(crate) fn render(kind: Kind, dump: &Value) -> String {
    let resources = resources(dump);
    let empty = Vec::new();
    let clusters = resources["clusters"].as_array().unwrap_or(&empty);
    let listeners = resources["listeners"].as_array().unwrap_or(&empty);
    let mut rows: Vec<Vec<String>> = Vec::new();
    match kind {
        Kind::Secrets => {
            rows.push(cells(&[
                "RESOURCE NAME",
                "TYPE",
                "STATUS",
                "VALID CERT",
                "SERIAL NUMBER",
                "NOT AFTER",
                "NOT BEFORE",
            ]));
            rows.extend(secrets(dump));
        }
        Kind::Clusters => {
            rows.push(cells(&[
                "SERVICE FQDN",
                "PORT",
                "SUBSET",
                "DIRECTION",
                "TYPE",
            ]));
            for c in clusters {
                let name = c["name"].as_str().unwrap_or("");
                let kind = c["type"].as_str().unwrap_or("STATIC").to_owned();
                let row = match name.split('|').collect::<Vec<_>>().as_slice() {
                    [dir @ ("outbound" | "inbound"), port, subset, host] => vec![
                        (*host).to_owned(),
                        (*port).to_owned(),
                        dash(subset),
                        (*dir).to_owned(),
                        kind,
                    ],
                    _ => vec![name.to_owned(), "-".into(), "-".into(), "-".into(), kind],
                };
                rows.push(row);
            }
        }
        Kind::Endpoints => {
            rows.push(cells(&["ENDPOINT", "STATUS", "CLUSTER"]));
            let eds = assignments(dump);
            for c in clusters {
                // An EDS cluster's endpoints are in the EndpointsConfigDump, under its
                // service_name or else its name.
                let la = match c["type"].as_str() {
                    Some("EDS") => {
                        let service = c["eds_cluster_config"]["service_name"]
                            .as_str()
                            .filter(|s| !s.is_empty());
                        let name = service.or(c["name"].as_str()).unwrap_or("");
                        eds.get(name).copied().unwrap_or(&Value::Null)
                    }
                    _ => &c["load_assignment"],
                };
                for group in la["endpoints"].as_array().unwrap_or(&empty) {
                    for e in group["lb_endpoints"].as_array().unwrap_or(&empty) {
                        let sa = &e["endpoint"]["address"]["socket_address"];
                        let status = e["health_status"].as_str().unwrap_or("HEALTHY");
                        rows.push(vec![
                            format!(
                                "{}:{}",
                                sa["address"].as_str().unwrap_or("?"),
                                sa["port_value"].as_u64().unwrap_or(0)
                            ),
                            status.to_owned(),
                            c["name"].as_str().unwrap_or("").to_owned(),
                        ]);
                    }
                }
            }
        }
        Kind::Listeners => {
            rows.push(cells(&["ADDRESSES", "PORT", "DESTINATION"]));
            for l in listeners {
                let sa = &l["address"]["socket_address"];
                for f in filters(l) {
                    let tc = &f["typed_config"];
                    let dest = match tc["route_config"]["name"].as_str() {
                        Some(r) if !r.is_empty() => format!("Route: {r}"),
                        _ if tc["route_config"].is_object() => "Route: (inline)".to_owned(),
                        _ => format!("Cluster: {}", tc["cluster"].as_str().unwrap_or("?")),
                    };
                    rows.push(vec![
                        sa["address"].as_str().unwrap_or("?").to_owned(),
                        sa["port_value"].as_u64().unwrap_or(0).to_string(),
                        dest,
                    ]);
                }
            }
        }
        Kind::Routes => {
            rows.push(cells(&["NAME", "VHOST NAME", "DOMAINS", "MATCH"]));
            for l in listeners {
                for f in filters(l) {
                    let rc = &f["typed_config"]["route_config"];
                    let name = rc["name"].as_str().unwrap_or("");
                    for vh in rc["virtual_hosts"].as_array().unwrap_or(&empty) {
                        let domains: Vec<&str> = vh["domains"]
                            .as_array()
                            .unwrap_or(&empty)
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        for r in vh["routes"].as_array().unwrap_or(&empty) {
                            rows.push(vec![
                                dash(name),
                                vh["name"].as_str().unwrap_or("").to_owned(),
                                domains.join(","),
                                route_match(&r["match"]),
                            ]);
                        }
                    }
                }
            }
        }
    }
    table(&rows)
}

/// One row per active secret of the dump's `SecretsConfigDump` (spar-proxy's and Envoy's
/// shape): its first certificate's serial and validity.
fn secrets(dump: &Value) -> Vec<Vec<String>> {
    use base64::Engine as _;
    let empty = Vec::new();
    let secrets = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".SecretsConfigDump"))
        })
        .flat_map(|c| c["dynamic_active_secrets"].as_array().unwrap_or(&empty));
    let mut rows = Vec::new();
    for s in secrets {
        let secret = &s["secret"];
        let (kind, data) = if secret["tls_certificate"].is_object() {
            (
                "Cert Chain",
                &secret["tls_certificate"]["certificate_chain"],
            )
        } else {
            ("CA", &secret["validation_context"]["trusted_ca"])
        };
        let pem = data["inline_bytes"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .or_else(|| {
                data["inline_string"]
                    .as_str()
                    .map(|t| t.as_bytes().to_vec())
            })
            .unwrap_or_default();
        let (valid, serial, not_after, not_before) = describe(&pem);
        rows.push(vec![
            s["name"].as_str().unwrap_or("").to_owned(),
            kind.to_owned(),
            "ACTIVE".to_owned(),
            valid,
            serial,
            not_after,
            not_before,
        ]);
    }
    rows
}

/// (valid now, serial in hex, not after, not before) of the first certificate in `pem`.
fn describe(pem: &[u8]) -> (String, String, String, String) {
    let unknown = || {
        (
            "false".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        )
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem) else {
        return unknown();
    };
    let Ok(cert) = pem.parse_x509() else {
        return unknown();
    };
    let time = |t: x509_parser::time::ASN1Time| {
        t.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "-".to_owned())
    };
    let v = cert.validity();
    (
        v.is_valid().to_string(),
        cert.serial.to_str_radix(16),
        time(v.not_after),
        time(v.not_before),
    )
}

/// The EDS assignments of the dump's `EndpointsConfigDump` (Envoy's and spar-proxy's
/// shape), by name.
fn assignments(dump: &Value) -> std::collections::HashMap<&str, &Value> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".EndpointsConfigDump"))
        })
        .flat_map(|c| {
            let dynamic = c["dynamic_endpoint_configs"]
                .as_array()
                .into_iter()
                .flatten();
            let statics = c["static_endpoint_configs"]
                .as_array()
                .into_iter()
                .flatten();
            dynamic.chain(statics)
        })
        .filter_map(|e| {
            let la = &e["endpoint_config"];
            Some((la["cluster_name"].as_str()?, la))
        })
        .collect()
}

/// The resources in force: a bootstrap dump's `static_resources` (spar-proxy merges what
/// xDS sent into it).
fn resources(dump: &Value) -> Value {
    dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["bootstrap"].is_object()))
        .map(|c| c["bootstrap"]["static_resources"].clone())
        .unwrap_or(Value::Null)
}

fn filters(listener: &Value) -> Vec<&Value> {
    listener["filter_chains"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|fc| fc["filters"].as_array().into_iter().flatten())
        .collect()
}

fn route_match(m: &Value) -> String {
    for key in ["path", "prefix", "path_separated_prefix"] {
        if let Some(p) = m[key].as_str() {
            return if key == "path" {
                p.to_owned()
            } else {
                format!("{p}*")
            };
        }
    }
    m["safe_regex"]["regex"]
        .as_str()
        .map_or_else(|| "-".to_owned(), |r| format!("regex {r}"))
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn cells(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_a_config_dump() {
        let dump = serde_json::json!({ "configs": [{ "bootstrap": { "static_resources": {
            "clusters": [{
                "name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "STATIC",
                "load_assignment": { "endpoints": [{ "lb_endpoints": [
                    { "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9081 } } } }
                ]}]}
            }, { "name": "xds-grpc" }],
            "listeners": [{
                "address": { "socket_address": { "address": "0.0.0.0", "port_value": 8080 } },
                "filter_chains": [{ "filters": [{ "typed_config": { "route_config": {
                    "name": "http.8080",
                    "virtual_hosts": [{ "name": "*:8080", "domains": ["*"], "routes": [
                        { "match": { "prefix": "/reviews" } }, { "match": { "path": "/x" } }
                    ]}]
                }}}]}]
            }]
        }}}]});
        // Rows compared as whitespace-separated words (columns are padded).
        let rows = |kind| -> Vec<Vec<String>> {
            render(kind, &dump)
                .lines()
                .map(|l| l.split_whitespace().map(str::to_owned).collect())
                .collect()
        };
        let words = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
        let clusters = rows(Kind::Clusters);
        assert_eq!(
            clusters[1],
            words("reviews.default.svc.cluster.local 9080 v1 outbound STATIC")
        );
        assert_eq!(clusters[2], words("xds-grpc - - - STATIC"));
        let endpoints = rows(Kind::Endpoints);
        assert_eq!(
            endpoints[1],
            words("127.0.0.1:9081 HEALTHY outbound|9080|v1|reviews.default.svc.cluster.local")
        );
        let listeners = rows(Kind::Listeners);
        assert_eq!(listeners[1], words("0.0.0.0 8080 Route: http.8080"));
        let routes = rows(Kind::Routes);
        assert_eq!(routes[1], words("http.8080 *:8080 * /reviews*"));
        assert_eq!(routes[2], words("http.8080 *:8080 * /x"));
    }

    #[test]
    fn eds_endpoints_come_from_the_endpoints_dump() {
        let dump = serde_json::json!({ "configs": [
            { "bootstrap": { "static_resources": { "clusters": [
                { "name": "outbound|80||a.default.svc.cluster.local", "type": "EDS",
                  "eds_cluster_config": { "eds_config": { "ads": {} } } },
                { "name": "outbound|80|v2|a.default.svc.cluster.local", "type": "EDS",
                  "eds_cluster_config": { "eds_config": { "ads": {} }, "service_name": "a-v2" } },
                { "name": "waiting", "type": "EDS" }
            ]}}},
            { "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
              "dynamic_endpoint_configs": [
                { "version_info": "3", "endpoint_config": {
                    "cluster_name": "outbound|80||a.default.svc.cluster.local",
                    "endpoints": [{ "lb_endpoints": [
                        { "endpoint": { "address": { "socket_address": { "address": "10.0.0.1", "port_value": 80 } } } }
                    ]}]}},
                { "version_info": "3", "endpoint_config": {
                    "cluster_name": "a-v2",
                    "endpoints": [{ "lb_endpoints": [
                        { "endpoint": { "address": { "socket_address": { "address": "10.0.0.2", "port_value": 80 } } },
                          "health_status": "DRAINING" }
                    ]}]}}
              ]}
        ]});
        let table = render(Kind::Endpoints, &dump);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert_eq!(
            rows[1],
            [
                "10.0.0.1:80",
                "HEALTHY",
                "outbound|80||a.default.svc.cluster.local"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "10.0.0.2:80",
                "DRAINING",
                "outbound|80|v2|a.default.svc.cluster.local"
            ]
        );
    }
}
