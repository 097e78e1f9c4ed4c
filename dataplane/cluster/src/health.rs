//! Active health checking, the pure part: the configuration ([`HealthCheck`]), the state
//! machine that turns check results into healthy / failed ([`HealthState`]), and response
//! matching for HTTP ([`http_status`], [`HealthCheckKind::status_ok`]) and TCP
//! ([`tcp_receive_matches`]). spar-health runs the probes and feeds the results in.
//!
//! Initial state: a host is treated as healthy until its first check completes, and that
//! first result decides at once (one success keeps it healthy, one failure fails it).
//! Envoy instead starts every host of a health-checked cluster as failed until its first
//! successful check (it then also needs only one success). Spar keeps traffic flowing across
//! config reloads and at start: a new checker never black-holes a cluster for a whole
//! interval. After the first result, Envoy's thresholds apply: `unhealthy_threshold`
//! consecutive failures fail a healthy host, `healthy_threshold` consecutive successes bring
//! a failed one back, and an HTTP status outside `expected_statuses` fails it at once.

use std::ops::Range;
use std::time::Duration;

/// One active health check (Envoy `HealthCheck`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time allowed for one check (connect, send, answer).
    pub timeout: Duration,
    /// Time between checks of one endpoint.
    pub interval: Duration,
    /// A random extra delay in `[0, interval_jitter]` added to every interval.
    pub interval_jitter: Duration,
    /// Consecutive failures that fail a healthy host.
    pub unhealthy_threshold: u32,
    /// Consecutive successes that bring a failed host back.
    pub healthy_threshold: u32,
    /// What a check does.
    pub kind: HealthCheckKind,
}

/// What a check sends and expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// HTTP/1.1 `GET path` with `Host: host` (the cluster name when `None`); healthy when the
    /// status is in one of the `expected` ranges (end exclusive; Envoy default 200 only).
    Http {
        /// Request path.
        path: String,
        /// Host header; `None` means the cluster's name.
        host: Option<String>,
        /// Healthy status ranges, `start..end`.
        expected: Vec<Range<u16>>,
    },
    /// Connect; send `send` if any; healthy when every `receive` block has been read, in
    /// order but not necessarily contiguous (Envoy's "fuzzy" match). No `receive`: a
    /// connect (and send) suffices.
    Tcp {
        /// Bytes written after connecting.
        send: Option<Vec<u8>>,
        /// Blocks expected in the answer.
        receive: Vec<Vec<u8>>,
    },
}

/// Envoy's default `expected_statuses`: 200 only.
pub const DEFAULT_EXPECTED: Range<u16> = 200..201;

impl HealthCheckKind {
    /// `status` is healthy for an HTTP check (false for a TCP check).
    pub fn status_ok(&self, status: u16) -> bool {
        match self {
            Self::Http { expected, .. } => expected.iter().any(|r| r.contains(&status)),
            Self::Tcp { .. } => false,
        }
    }
}

/// What one check found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The endpoint answered as expected.
    Healthy,
    /// Connect failure, timeout, reset, TCP mismatch: counts towards `unhealthy_threshold`.
    Failed,
    /// An HTTP status outside `expected_statuses`: fails the host at once (Envoy).
    FailedNow,
}

/// Health of one endpoint under one check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthState {
    failed: bool,
    checked: bool,
    successes: u32,
    failures: u32,
}

impl HealthState {
    /// Not checked yet: healthy (see the module doc).
    pub fn new() -> Self {
        Self::default()
    }

    /// The host is failed by this check.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Folds one result in; true when [`Self::is_failed`] changed.
    pub fn record(&mut self, r: CheckResult, hc: &HealthCheck) -> bool {
        let before = self.failed;
        let first = !self.checked;
        self.checked = true;
        match r {
            CheckResult::Healthy => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if first || self.successes >= hc.healthy_threshold {
                    self.failed = false;
                }
            }
            CheckResult::Failed | CheckResult::FailedNow => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if first || r == CheckResult::FailedNow || self.failures >= hc.unhealthy_threshold {
                    self.failed = true;
                }
            }
        }
        before != self.failed
    }
}

/// Reading an HTTP/1.x status line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StatusLine {
    /// No complete status line yet.
    Incomplete,
    /// `HTTP/1.x NNN ...` read.
    Status(u16),
    /// Not an HTTP/1.x response.
    Invalid,
}

/// Longest status line read before giving up (bytes); real ones are under 64.
const MAX_STATUS_LINE: usize = 1024;

/// The status of the HTTP/1.x response starting at `buf`.
pub fn http_status(buf: &[u8]) -> StatusLine {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_STATUS_LINE {
            StatusLine::Invalid
        } else {
            StatusLine::Incomplete
        };
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !matches!(version, b"HTTP/1.1" | b"HTTP/1.0")
        || code.len() != 3
        || !code.iter().all(u8::is_ascii_digit)
    {
        return StatusLine::Invalid;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if (100..600).contains(&status) {
        StatusLine::Status(status)
    } else {
        StatusLine::Invalid
    }
}

/// Every block of `receive` occurs in `buf`, in order, not necessarily contiguous.
pub fn tcp_receive_matches(receive: &[Vec<u8>], buf: &[u8]) -> bool {
    let mut rest = buf;
    for block in receive {
        if block.is_empty() {
            continue;
        }
        match rest
            .windows(block.len())
            .position(|w| w == block.as_slice())
        {
            Some(at) => rest = &rest[at + block.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
