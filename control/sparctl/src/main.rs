//! `sparctl`: Spar's command line, in the manner of `istioctl`.
//!
//! `sparctl analyze FILE|DIR...` reads Istio YAML, prints every message (errors, warnings,
//! infos, each with its code, resource, `file:line` and field path) and exits 1 when any is
//! an error, 0 otherwise; 2 when a path cannot be read. The analysis itself is spar-istio's;
//! this binary only finds files, prints and maps results to exit codes.
//!
//! `sparctl proxy-status` prints each connected proxy's sync state per resource type, read
//! from spar-control's monitoring port; `sparctl proxy-config clusters|listeners|routes|
//! endpoints` prints what one proxy runs, from its admin `/config_dump`.

#![forbid(unsafe_code)]

mod analyze;
mod config;
mod status;
mod unsupported;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "sparctl", version, about = "Spar service mesh command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate and analyze Istio configuration files, like `istioctl analyze`.
    Analyze(AnalyzeArgs),
    /// Each connected proxy's sync state per resource type, like `istioctl proxy-status`.
    ProxyStatus(StatusArgs),
    /// What one proxy runs, from its admin `/config_dump`, like `istioctl proxy-config`.
    ProxyConfig(ConfigArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Which table.
    #[arg(value_enum)]
    kind: config::Kind,
    /// The proxy's admin address.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: String,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// spar-control's monitoring address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    control: String,
}

#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// Files or directories (searched recursively for .yaml, .yml and .json); `-` is stdin.
    #[arg(required = true)]
    paths: Vec<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Log)]
    output: Output,
    /// Namespace of objects whose metadata has none.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
}

/// `log` is istioctl's line-per-message form; `json` an array of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Log,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => analyze::run(&args.paths, args.output, &args.namespace),
        Command::ProxyStatus(args) => status::run(&args.control),
        Command::ProxyConfig(args) => config::run(args.kind, &args.admin),
    }
}
