//! Command-line flags and their translation into configs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::echo::EchoConfig;
use crate::load::{LoadConfig, Target};
use crate::sys::Io;

/// HTTP/1.1 load generator (closed and open loop) and echo upstream.
#[derive(Debug, Parser)]
#[command(name = "spar-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send HTTP/1.1 requests and report latency percentiles and throughput.
    Load(LoadArgs),
    /// Serve a fixed 200 response to every request (an upstream for tests).
    Echo(EchoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoArg {
    /// io_uring, falling back to epoll if it cannot be set up.
    Uring,
    /// monoio's legacy epoll driver.
    Epoll,
}

impl From<IoArg> for Io {
    fn from(a: IoArg) -> Self {
        match a {
            IoArg::Uring => Io::Uring,
            IoArg::Epoll => Io::Epoll,
        }
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// http://host[:port][/path]
    pub url: String,
    /// Connections, spread over threads; each has one request in flight.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: usize,
    /// Measured time (e.g. 10s, 500ms, 2m). Default 10s unless -n is given.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured requests in total (failed ones included); ends the run when spent.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Time at the start whose requests are not measured.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: requests/s in total, spread evenly over connections. Latency
    /// counts from each request's intended send time (wrk2's correction).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open a new connection per request (`Connection: close`).
    #[arg(long)]
    pub new_conn: bool,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra request header, 'name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body of this many bytes, sent with content-length.
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,
    /// Per-request timeout (connect included).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Worker threads, one runtime each.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// I/O driver.
    #[arg(long, value_enum, default_value_t = IoArg::Uring)]
    pub io: IoArg,
    /// Pin worker threads to these CPUs, round-robin (e.g. 0,2).
    #[arg(long, value_delimiter = ',')]
    pub pin: Vec<usize>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl LoadArgs {
    /// Builds the config; `stderr_is_tty` decides the progress line.
    pub fn to_config(&self, stderr_is_tty: bool) -> anyhow::Result<LoadConfig> {
        let headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let duration = match (self.duration, self.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        Ok(LoadConfig {
            url: self.url.clone(),
            target: Target::parse(&self.url)?,
            method: self.method.clone(),
            headers,
            body_size: self.body_size,
            connections: self.connections,
            threads: self.threads,
            duration,
            requests: self.requests,
            warmup: self.warmup,
            rate: self.rate,
            new_conn: self.new_conn,
            timeout: self.timeout,
            io: self.io.into(),
            pin: self.pin.clone(),
            progress: !self.quiet && stderr_is_tty,
        })
    }
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on; port 0 picks one (printed as `listening on ADDR`).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Response body size, bytes.
    #[arg(long, default_value_t = 100)]
    pub body_size: usize,
    /// Threads, each with its own SO_REUSEPORT listener.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// I/O driver.
    #[arg(long, value_enum, default_value_t = IoArg::Uring)]
    pub io: IoArg,
    /// Add `x-echo-path: <request target>` to responses.
    #[arg(long)]
    pub echo_path: bool,
    /// Name this server in every answer: `x-served-by: NAME` and a body of `NAME\n`
    /// (instead of `--body-size` filler), as a sample service of the local mesh.
    #[arg(long)]
    pub name: Option<String>,
}

impl EchoArgs {
    pub fn to_config(&self) -> EchoConfig {
        EchoConfig {
            listen: self.listen,
            body_size: self.body_size,
            threads: self.threads,
            io: self.io.into(),
            echo_path: self.echo_path,
            name: self.name.clone(),
        }
    }
}

/// Parses `name: value`.
pub fn parse_header(s: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = s
        .split_once(':')
        .with_context(|| format!("header {s:?}: expected 'name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        bail!("header {s:?}: empty name");
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Parses `1.5s`, `250ms`, `100us`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit, e.g. 10s"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ns, us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("x-a:  b c ").ok(),
            Some(("x-a".to_owned(), "b c".to_owned()))
        );
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn load_flags() {
        let cli = Cli::try_parse_from([
            "spar-bench",
            "load",
            "http://127.0.0.1:8080/x?y=1",
            "-c",
            "4",
            "-n",
            "100",
            "-H",
            "x-a: 1",
            "--pin",
            "0,1",
            "--io",
            "epoll",
        ]);
        let Ok(Cli {
            command: Command::Load(args),
        }) = cli
        else {
            panic!("parse failed: {cli:?}");
        };
        let cfg = args.to_config(false);
        let Ok(cfg) = cfg else {
            panic!("config failed: {cfg:?}");
        };
        assert_eq!(cfg.connections, 4);
        assert_eq!(cfg.requests, Some(100));
        assert_eq!(cfg.duration, None);
        assert_eq!(cfg.pin, vec![0, 1]);
        assert_eq!(cfg.io, Io::Epoll);
        assert_eq!(cfg.target.path, "/x?y=1");
        assert_eq!(cfg.target.authority, "127.0.0.1:8080");
        assert!(!cfg.progress);
    }
}
