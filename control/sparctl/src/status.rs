//! `sparctl proxy-status`: each connected proxy's sync state per resource type, read from
//! spar-control's monitoring port (`/debug/syncz`), in istioctl's table shape:
//! `NAME  CDS  LDS  EDS  RDS  ISTIOD  VERSION`, a cell being SYNCED, STALE (sent, not yet
//! acknowledged), NACKED (rejected; the reason is printed below the table) or NOT SENT.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

const TYPES: [(&str, &str); 4] = [
    ("CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    (
        "LDS",
        "type.googleapis.com/envoy.config.listener.v3.Listener",
    ),
    (
        "EDS",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
    (
        "RDS",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ),
];

#[allow(clippy::print_stdout, clippy::print_stderr)] // a CLI: printing is its job
pub(crate) fn run(control: &str) -> ExitCode {
    let syncz = match fetch(control, "/debug/syncz") {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sparctl: cannot read {control}/debug/syncz: {e}");
            return ExitCode::from(2);
        }
    };
    let (table, nacks) = render(&syncz, control);
    print!("{table}");
    for n in &nacks {
        println!("{n}");
    }
    ExitCode::SUCCESS
}

/// The table and the NACK explanations.
pub(crate) fn render(syncz: &Value, control: &str) -> (String, Vec<String>) {
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "CDS".to_owned(),
        "LDS".to_owned(),
        "EDS".to_owned(),
        "RDS".to_owned(),
        "ISTIOD".to_owned(),
        "VERSION".to_owned(),
    ]];
    let mut nacks = Vec::new();
    let empty = Vec::new();
    for p in syncz["proxies"].as_array().unwrap_or(&empty) {
        let id = p["id"].as_str().unwrap_or("?");
        let mut row = vec![display_name(id)];
        let mut version = String::from("-");
        for (label, type_url) in TYPES {
            let t = &p["types"][type_url];
            let cell = if t.is_null() {
                "NOT SENT".to_owned()
            } else if !t["nack"].is_null() {
                nacks.push(format!(
                    "{id} {label} NACK of version {}: {}",
                    t["nack"]["version"].as_str().unwrap_or("?"),
                    t["nack"]["error"].as_str().unwrap_or("?")
                ));
                "NACKED".to_owned()
            } else if t["synced"].as_bool() == Some(true) {
                if let Some(v) = t["acked"].as_str() {
                    version = v.to_owned();
                }
                "SYNCED".to_owned()
            } else {
                "STALE".to_owned()
            };
            row.push(cell);
        }
        row.push(control.to_owned());
        row.push(version);
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    (out, nacks)
}

/// Istio shows `POD.NAMESPACE` from `TYPE~IP~POD.NAMESPACE~DOMAIN`.
fn display_name(id: &str) -> String {
    id.split('~').nth(2).unwrap_or(id).to_owned()
}

/// GETs `path` from `addr` and parses the JSON body.
pub(crate) fn fetch(addr: &str, path: &str) -> anyhow::Result<Value> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{}",
        head.lines().next().unwrap_or("")
    );
    Ok(serde_json::from_str(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_sync_state_and_nacks() {
        let syncz = serde_json::json!({ "proxies": [
            { "id": "router~127.0.0.1~gw-1.default~default.svc.cluster.local", "streams": 1, "types": {
                "type.googleapis.com/envoy.config.cluster.v3.Cluster": { "sent": "3", "acked": "3", "synced": true, "nack": null },
                "type.googleapis.com/envoy.config.listener.v3.Listener": { "sent": "3", "acked": "2", "synced": false,
                    "nack": { "version": "3", "error": "listener `http`: bad" } }
            }}
        ]});
        let (table, nacks) = render(&syncz, "127.0.0.1:15014");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{table}");
        assert!(lines[1].starts_with("gw-1.default"), "{table}");
        assert!(
            lines[1].contains("SYNCED")
                && lines[1].contains("NACKED")
                && lines[1].contains("NOT SENT")
        );
        assert_eq!(nacks.len(), 1);
        assert!(nacks[0].contains("LDS NACK of version 3: listener `http`: bad"));
    }
}
