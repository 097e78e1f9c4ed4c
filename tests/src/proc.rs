//! Real processes: spar-proxy with a bootstrap written for the test, and
//! spar-bench echo upstreams.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{assert_eventually, free_port};

/// The cargo target profile dir these tests were built into.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary, built once if this run did not build it yet.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = target_dir().join(name);
    BUILT.get_or_init(|| {
        let all = [
            "spar-proxy",
            "spar-bench",
            "spar-control",
            "sparctl",
            "spar-ca",
        ];
        if all.iter().any(|b| !target_dir().join(b).exists()) {
            let status = Command::new(env!("CARGO"))
                .args([
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
                ])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the binaries failed");
        }
    });
    path
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Process {
    pub child: Child,
}

impl Process {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: libc::kill on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits up to `within` for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let until = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory (VmHWM) and current (VmRSS), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A `spar-bench echo` upstream on an ephemeral port.
#[derive(Debug)]
pub struct Echo {
    pub addr: SocketAddr,
    pub process: Process,
}

impl Echo {
    pub fn start(extra: &[&str]) -> Echo {
        let mut child = Command::new(bin("spar-bench"))
            .args(["echo", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start spar-bench echo");
        let mut line = String::new();
        let out = child.stdout.take().expect("echo stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("read echo banner");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected echo banner: {line:?}"));
        Echo {
            addr,
            process: Process { child },
        }
    }
}

/// A running spar-proxy with its own config file in a scratch directory.
#[derive(Debug)]
pub struct SparProxy {
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub process: Process,
}

/// A scratch directory unique to this test process and call.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("spar-test-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

impl SparProxy {
    /// Writes `yaml` (with `{admin}` replaced by a free admin port) and
    /// starts spar-proxy on it with `args`, then waits for `/ready`.
    pub fn start(yaml: &str, args: &[&str]) -> SparProxy {
        let dir = scratch_dir("proxy");
        let admin_port = free_port();
        let config = dir.join("bootstrap.yaml");
        std::fs::write(&config, yaml.replace("{admin}", &admin_port.to_string()))
            .expect("write config");
        let child = Command::new(bin("spar-proxy"))
            .arg("-c")
            .arg(&config)
            .args(["--no-pin", "-l", "warn"])
            .args(args)
            .spawn()
            .expect("start spar-proxy");
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
        let mut proxy = SparProxy {
            admin,
            config,
            dir,
            process: Process { child },
        };
        proxy.wait_ready();
        proxy
    }

    fn wait_ready(&mut self) {
        let admin = self.admin;
        let mut exited = None;
        assert_eventually(
            Duration::from_secs(20),
            "spar-proxy /ready answers 200",
            || {
                if let Ok(Some(s)) = self.process.child.try_wait() {
                    exited = Some(s);
                    return true;
                }
                crate::http::get(admin, "/ready").is_ok_and(|r| r.status == 200)
            },
        );
        assert!(
            exited.is_none(),
            "spar-proxy exited during start: {exited:?}"
        );
    }

    /// The admin `/stats/prometheus` text.
    pub fn metrics(&self) -> String {
        crate::http::get(self.admin, "/stats/prometheus")
            .map(|r| r.body_text())
            .unwrap_or_default()
    }

    /// Sum of a metric's samples whose label text contains `labels_contain`.
    pub fn metric(&self, name: &str, labels_contain: &str) -> i64 {
        metric_sum(&self.metrics(), name, labels_contain)
    }
}

/// Sums the samples of `name` whose labels contain `labels_contain`.
pub fn metric_sum(text: &str, name: &str, labels_contain: &str) -> i64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.contains(labels_contain)).then(|| value.parse::<i64>().ok())?
        })
        .sum()
}

/// spar-control on the Istio YAML in `dir`, serving xDS on 127.0.0.1:`xds` and its
/// monitoring endpoints on 127.0.0.1:`monitoring`, checking the directory every 100 ms.
pub fn spar_control(dir: &std::path::Path, xds: u16, monitoring: u16) -> Process {
    let child = Command::new(bin("spar-control"))
        .arg("--config-dir")
        .arg(dir)
        .args(["--xds-address", &format!("127.0.0.1:{xds}")])
        .args(["--monitoring-address", &format!("127.0.0.1:{monitoring}")])
        .args(["--watch-every", "100ms", "-l", "warn"])
        // The embedded CA on a port of its own, its root beside the config directory.
        .args(["--ca-address", "127.0.0.1:0"])
        .arg("--ca-dir")
        .arg(dir.with_extension("ca"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start spar-control");
    Process { child }
}
