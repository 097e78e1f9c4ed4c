//! `spar-bench load URL` and `spar-bench echo --listen ADDR`: flags in, a
//! report or a server out. Exit codes: 0 done, 1 every request failed or the
//! run could not start, 2 bad flags (clap).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use spar_bench::cli::{Cli, Command, EchoArgs, LoadArgs};
use spar_bench::{EchoServer, load};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(args) => run_load(&args),
        Command::Echo(args) => run_echo(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spar-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_load(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config(std::io::stderr().is_terminal())?;
    let report = load::run(&cfg)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        report.write_table(&mut out)?;
    }
    out.flush()?;
    if report.all_failed() {
        eprintln!(
            "spar-bench: every request failed ({} errors: {} connect, {} read, {} write, \
             {} timeout, {} parse, {} non-2xx) against {}",
            report.errors_total,
            report.errors.connect,
            report.errors.read,
            report.errors.write,
            report.errors.timeout,
            report.errors.parse,
            report.errors.status.total(),
            report.url,
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_echo(args: &EchoArgs) -> anyhow::Result<ExitCode> {
    let server = EchoServer::start(&args.to_config())
        .with_context(|| format!("listening on {}", args.listen))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", server.addr())?;
    out.flush()?;
    drop(out);
    server.wait();
    // Server threads only return if their runtime fails.
    anyhow::bail!("echo server threads exited")
}
