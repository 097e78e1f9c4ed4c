//! The `spar-bench` binary end to end: `echo` prints its address, `load
//! --json` prints one object with the documented keys, and a run where every
//! request fails exits non-zero with a message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_spar-bench");

/// Kills the echo child when the test ends, pass or fail.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_echo(extra: &[&str]) -> (Reap, String) {
    let mut child = Command::new(BIN)
        .args(["echo", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reap = Reap(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(!addr.ends_with(":0"), "{addr}");
    (reap, addr)
}

#[test]
fn load_json_has_the_documented_keys() {
    let (_echo, addr) = start_echo(&["--body-size", "64"]);
    let out = Command::new(BIN)
        .args(["load", &format!("http://{addr}/x"), "--json", "-q"])
        .args(["-c", "2", "-d", "500ms", "--warmup", "100ms"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "url",
        "mode",
        "rate",
        "io",
        "threads",
        "connections",
        "new_conn",
        "duration_s",
        "requests",
        "ok",
        "throughput_rps",
        "bytes_read",
        "bytes_written",
        "latency_us",
        "errors",
        "errors_total",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    for key in ["min", "mean", "stdev", "p50", "p90", "p99", "p99_9", "max"] {
        assert!(v["latency_us"][key].is_number(), "latency_us.{key} in {v}");
    }
    for key in ["connect", "read", "write", "timeout", "parse"] {
        assert!(v["errors"][key].is_u64(), "errors.{key} in {v}");
    }
    for key in ["1xx", "3xx", "4xx", "5xx", "other"] {
        assert!(
            v["errors"]["status"][key].is_u64(),
            "errors.status.{key} in {v}"
        );
    }
    assert_eq!(v["mode"], "closed");
    assert_eq!(v["errors_total"], 0);
    assert!(v["requests"].as_u64().unwrap() > 0);
    assert_eq!(v["requests"], v["ok"]);
}

#[test]
fn table_output_open_loop_epoll_echo() {
    let (_echo, addr) = start_echo(&["--echo-path", "--io", "epoll"]);
    let out = Command::new(BIN)
        .args(["load", &format!("http://{addr}/"), "-n", "100"])
        .args(["--warmup", "0s", "--rate", "1000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("open loop, 1000 req/s"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    assert!(text.contains("100 requests"), "{text}");
    assert!(text.contains("errors: none"), "{text}");
}

#[test]
fn every_request_failing_exits_nonzero() {
    let addr = support::closed_port();
    let out = Command::new(BIN)
        .args([
            "load",
            &format!("http://{addr}/"),
            "-n",
            "5",
            "--warmup",
            "0s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("every request failed"), "{err}");
    assert!(err.contains("5 connect"), "{err}");
}

#[test]
fn bad_flags_are_rejected() {
    let out = Command::new(BIN)
        .args(["load", "https://127.0.0.1/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));
}
