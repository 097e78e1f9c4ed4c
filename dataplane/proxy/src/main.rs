//! spar-proxy: parse flags, load the bootstrap, start the workers and the
//! control thread, map failures to exit codes. The work is in the crates.

mod control;
mod identity;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Spar's data plane: a thread-per-core HTTP/1.1 and TCP proxy configured by
/// an Envoy bootstrap file.
#[derive(Debug, Parser)]
#[command(name = "spar-proxy", version)]
pub(crate) struct Args {
    /// Envoy bootstrap file (YAML or JSON), as Envoy's -c.
    #[arg(short = 'c', long = "config-path")]
    pub(crate) config_path: PathBuf,
    /// Worker threads; default: one per CPU this process may use.
    #[arg(long, default_value_t = 0)]
    pub(crate) concurrency: usize,
    /// I/O backend; auto uses io_uring and falls back to epoll.
    #[arg(long, value_enum, default_value_t = IoArg::Auto)]
    pub(crate) io: IoArg,
    /// TCP proxy: move bytes with splice(2) instead of a userspace buffer.
    #[arg(long)]
    pub(crate) tcp_splice: bool,
    /// Do not pin workers to CPUs.
    #[arg(long)]
    pub(crate) no_pin: bool,
    /// Seconds in-flight requests get to finish after SIGTERM
    /// (Istio's terminationDrainDuration default).
    #[arg(long = "drain-time-s", default_value_t = 5)]
    pub(crate) drain_time_s: u64,
    /// Log level (trace, debug, info, warn, error), as Envoy's -l.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub(crate) log_level: String,
    /// Check the configuration and exit, as Envoy's --mode validate.
    #[arg(long, value_enum, default_value_t = Mode::Serve)]
    pub(crate) mode: Mode,
    #[command(flatten)]
    pub(crate) identity: identity::IdentityArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum IoArg {
    Auto,
    #[value(name = "io_uring", alias = "io-uring", alias = "uring")]
    IoUring,
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Serve,
    Validate,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match control::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spar-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
