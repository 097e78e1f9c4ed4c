//! spar-xds-scale: runs the control-plane scale benchmark (see the library's docs) and
//! prints a table. With `--runs N` above 1, each run is a fresh process (so memory figures
//! do not carry over) and the table shows the median, minimum and maximum.

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use spar_xds_scale::mesh::Shape;
use spar_xds_scale::{Params, Report};

/// Control-plane scale benchmark.
#[derive(Parser, Debug)]
#[command(name = "spar-xds-scale", args_override_self = true)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 5)]
    endpoints_per_service: usize,
    #[arg(long, default_value_t = 1000)]
    virtual_services: usize,
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// Namespaces the services and proxies are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Services each proxy's Sidecar imports: 0 for all (`*/*`).
    #[arg(long, default_value_t = 0)]
    egress_hosts: usize,
    /// The xDS server's push debounce in ms (spar-control's is 100).
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// Seconds to wait for the proxies.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Runs, each in a fresh process; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one run's figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "spar-xds-scale: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.runs <= 1 {
        let report = spar_xds_scale::run(&params(&args))?;
        if args.json {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else {
            table(&mut out, &[report])?;
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut reports = Vec::new();
    for i in 0..args.runs {
        // The same flags; the later `--runs 1` wins (`args_override_self`).
        let mut child_args: Vec<String> = std::env::args().skip(1).collect();
        child_args.extend(["--runs".to_owned(), "1".to_owned(), "--json".to_owned()]);
        let output = Command::new(&exe)
            .args(&child_args)
            .output()
            .with_context(|| format!("run {}", i + 1))?;
        anyhow::ensure!(
            output.status.success(),
            "run {} failed: {}",
            i + 1,
            String::from_utf8_lossy(&output.stderr)
        );
        reports.push(serde_json::from_slice::<Report>(&output.stdout)?);
    }
    table(&mut out, &reports)
}

fn params(args: &Args) -> Params {
    Params {
        shape: Shape {
            services: args.services,
            endpoints_per_service: args.endpoints_per_service,
            virtual_services: args.virtual_services,
            namespaces: args.namespaces,
            egress_hosts: args.egress_hosts,
        },
        proxies: args.proxies,
        debounce: Duration::from_millis(args.debounce_ms),
        timeout: Duration::from_secs(args.timeout_s),
    }
}

/// One row per figure: median, min and max over the runs.
fn table(out: &mut impl std::io::Write, reports: &[Report]) -> anyhow::Result<()> {
    let first = reports.first().context("no runs")?;
    writeln!(out, "| figure | median | min | max | unit |")?;
    writeln!(out, "|---|---:|---:|---:|---|")?;
    for row in &first.rows {
        let mut values: Vec<f64> = reports.iter().filter_map(|r| r.get(&row.name)).collect();
        values.sort_by(f64::total_cmp);
        let median = values.get(values.len() / 2).copied().unwrap_or(f64::NAN);
        let min = values.first().copied().unwrap_or(f64::NAN);
        let max = values.last().copied().unwrap_or(f64::NAN);
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.name,
            fmt(median),
            fmt(min),
            fmt(max),
            row.unit
        )?;
    }
    Ok(())
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
