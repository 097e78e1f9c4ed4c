//! `cargo xtask demo`: the README's main job for now. Builds spar-proxy and
//! spar-bench (release), starts `spar-bench echo` as the upstream and
//! spar-proxy on deploy/standalone/bootstrap.yaml in front of it, sends a few
//! requests through, prints what happened and where to look, and keeps
//! running until interrupted (Ctrl-C stops both processes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, run as sh};

const PROXY_HTTP: &str = "127.0.0.1:10000";
const PROXY_TCP: &str = "127.0.0.1:10001";
const ADMIN: &str = "127.0.0.1:15000";
const ECHO: &str = "127.0.0.1:18081";

pub(crate) struct Kill(pub(crate) Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_listening(addr: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("nothing listening on {addr} after 30 s")
}

/// One GET over a fresh connection; returns the status line and body.
fn get(addr: &str, host: &str, path: &str) -> anyhow::Result<(String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    sh(Command::new("cargo").args(["build", "--release", "-p", "spar-proxy", "-p", "spar-bench"]))?;
    let bin = root().join("target/release");
    let config = root().join("deploy/standalone/bootstrap.yaml");

    let mut echo = Kill(
        Command::new(bin.join("spar-bench"))
            .args(["echo", "--listen", ECHO, "--echo-path"])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    if let Some(out) = echo.0.stdout.take() {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
    }
    wait_listening(ECHO)?;
    let proxy = Kill(
        Command::new(bin.join("spar-proxy"))
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "2"])
            .spawn()?,
    );
    wait_listening(PROXY_HTTP)?;

    println!(
        "\n== spar-proxy is running ({}), echo upstream on {ECHO}\n",
        config.display()
    );
    for (host, path) in [
        ("demo.local", "/"),
        ("demo.local", "/api/items?id=7"),
        ("other.example", "/"),
    ] {
        let (status, body) = get(PROXY_HTTP, host, path)?;
        println!(
            "GET http://{host}{path} via {PROXY_HTTP} -> {status} ({} body bytes)",
            body.len()
        );
    }
    let mut tcp = TcpStream::connect(PROXY_TCP)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.write_all(b"GET /through-tcp-proxy HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply)?;
    println!(
        "raw TCP via {PROXY_TCP} -> {}",
        reply.lines().next().unwrap_or_default()
    );

    let load = Command::new(bin.join("spar-bench"))
        .args([
            "load",
            &format!("http://{PROXY_HTTP}/"),
            "-c",
            "8",
            "-d",
            "2s",
            "--quiet",
        ])
        .output()?;
    println!(
        "\n2 s of load through the proxy (spar-bench load -c 8):\n{}",
        String::from_utf8_lossy(&load.stdout)
    );

    println!("Where to look:");
    println!(
        "  curl -H 'host: demo.local' http://{PROXY_HTTP}/       # routed to the echo cluster"
    );
    println!("  curl http://{ADMIN}/stats/prometheus                  # counters, Envoy names");
    println!("  curl http://{ADMIN}/config_dump                       # the bootstrap in force");
    println!("  curl http://{ADMIN}/ready");
    println!("  edit {} and save: it reloads live", config.display());
    println!("\nRunning until Ctrl-C.");
    let mut proxy = proxy;
    let status = proxy.0.wait()?;
    drop(echo);
    anyhow::ensure!(
        status.success() || status.code().is_none(),
        "spar-proxy exited with {status}"
    );
    Ok(())
}
