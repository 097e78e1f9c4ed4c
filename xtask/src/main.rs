#![allow(clippy::print_stdout)] // a tool: printing is its job
//! Project tasks. `cargo xtask test` is the one entry point CI calls;
//! `cargo xtask mesh` is the README's main job.

use std::process::{Command, ExitCode};

mod demo;
mod mesh;
mod test;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("mesh") => mesh::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test   install what the tests need, then fmt, clippy, every test, fuzz build\n  mesh   the local mesh: spar-control, an ingress gateway and a sample app with sidecars, sample traffic, keep running (--once, --debug)\n  demo   build and start spar-proxy in front of an echo upstream, send requests, keep running"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command in the repository root, echoing it; fails on non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd.current_dir(root()).status()?;
    anyhow::ensure!(status.success(), "`{}` failed with {status}", describe(cmd));
    Ok(())
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Into::into)
        .unwrap_or_default()
}

pub(crate) fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}
