//! Envoy's retry policy: which attempt outcomes are retried (`retry_on`), and the fully
//! jittered exponential backoff between attempts.

use std::time::Duration;

/// Envoy's default backoff base interval: 25 ms.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// Envoy `RetryPolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Conditions that are retried.
    pub retry_on: RetryOn,
    /// Most retries (Envoy default 1).
    pub num_retries: u32,
    /// Timeout of each attempt; `None`: only the route timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// Idle timeout of each attempt.
    pub per_try_idle_timeout: Option<Duration>,
    /// Statuses retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// Backoff base interval (default 25 ms).
    pub backoff_base: Duration,
    /// Backoff cap (default 10 times the base).
    pub backoff_max: Duration,
    /// `retry_host_predicate` `envoy.retry_host_predicates.previous_hosts`: avoid hosts
    /// already tried.
    pub retry_previous_hosts: bool,
    /// Host selection attempts per retry when avoiding previous hosts (default 1).
    pub host_selection_max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retry_on: RetryOn(0),
            num_retries: 1,
            per_try_timeout: None,
            per_try_idle_timeout: None,
            retriable_status_codes: Vec::new(),
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_BASE * 10,
            retry_previous_hosts: false,
            host_selection_max_attempts: 1,
        }
    }
}

/// The `retry_on` conditions, as bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryOn(pub u32);

/// `retry_on` names Envoy documents, with their bits. Names Envoy has that Spar does not
/// implement (`envoy-ratelimited`, `retriable-headers`, `reset-before-request`,
/// `http3-post-connect-failure`) are refused by [`RetryOn::parse`].
const NAMES: &[(&str, RetryOn)] = &[
    ("5xx", RetryOn::FIVE_XX),
    ("gateway-error", RetryOn::GATEWAY_ERROR),
    ("connect-failure", RetryOn::CONNECT_FAILURE),
    ("refused-stream", RetryOn::REFUSED_STREAM),
    ("reset", RetryOn::RESET),
    ("retriable-status-codes", RetryOn::RETRIABLE_STATUS_CODES),
    ("retriable-4xx", RetryOn::RETRIABLE_4XX),
    ("cancelled", RetryOn::GRPC_CANCELLED),
    ("deadline-exceeded", RetryOn::GRPC_DEADLINE_EXCEEDED),
    ("internal", RetryOn::GRPC_INTERNAL),
    ("resource-exhausted", RetryOn::GRPC_RESOURCE_EXHAUSTED),
    ("unavailable", RetryOn::GRPC_UNAVAILABLE),
];

impl RetryOn {
    /// Any 5xx response, and resets, connect failures and per-try timeouts.
    pub const FIVE_XX: Self = Self(1 << 0);
    /// 502, 503, 504, and resets, connect failures and per-try timeouts.
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    /// Connection failures (connect error or timeout).
    pub const CONNECT_FAILURE: Self = Self(1 << 2);
    /// HTTP/2 `REFUSED_STREAM`.
    pub const REFUSED_STREAM: Self = Self(1 << 3);
    /// Any reset or disconnect before response headers, and per-try timeouts.
    pub const RESET: Self = Self(1 << 4);
    /// Statuses in `retriable_status_codes`.
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 5);
    /// 409.
    pub const RETRIABLE_4XX: Self = Self(1 << 6);
    /// gRPC status 1.
    pub const GRPC_CANCELLED: Self = Self(1 << 7);
    /// gRPC status 4.
    pub const GRPC_DEADLINE_EXCEEDED: Self = Self(1 << 8);
    /// gRPC status 13.
    pub const GRPC_INTERNAL: Self = Self(1 << 9);
    /// gRPC status 8.
    pub const GRPC_RESOURCE_EXHAUSTED: Self = Self(1 << 10);
    /// gRPC status 14.
    pub const GRPC_UNAVAILABLE: Self = Self(1 << 11);

    /// Parses Envoy's comma-separated list (`"5xx,connect-failure"`; spaces around names
    /// are ignored, empty names skipped).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut bits = 0;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => bits |= b.0,
                None => {
                    return Err(format!(
                        "retry_on `{name}` is not supported by spar-proxy (supported: {})",
                        NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(Self(bits))
    }

    /// Whether any bit of `other` is set.
    pub fn has(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// How one upstream attempt ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Response headers arrived; `grpc_status` from `grpc-status` in them (trailers-only
    /// gRPC responses), if any.
    Response {
        /// HTTP status.
        status: u16,
        /// gRPC status code.
        grpc_status: Option<u32>,
    },
    /// The connection could not be established (error or connect timeout).
    ConnectFailure,
    /// Disconnect or reset before response headers.
    Reset,
    /// HTTP/2 `REFUSED_STREAM`.
    RefusedStream,
    /// The per-try timeout fired before response headers.
    PerTryTimeout,
}

impl RetryPolicy {
    /// Whether `o` is retried under `retry_on`, as Envoy decides: `5xx`, `gateway-error`
    /// and `reset` also cover every failure without a response (connect failure, refused
    /// stream, reset, per-try timeout).
    pub fn should_retry(&self, o: &AttemptOutcome) -> bool {
        let on = self.retry_on;
        let any_reset = RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET;
        match *o {
            AttemptOutcome::ConnectFailure => on.has(any_reset | RetryOn::CONNECT_FAILURE),
            AttemptOutcome::RefusedStream => on.has(any_reset | RetryOn::REFUSED_STREAM),
            AttemptOutcome::Reset | AttemptOutcome::PerTryTimeout => on.has(any_reset),
            AttemptOutcome::Response {
                status,
                grpc_status,
            } => {
                (on.has(RetryOn::FIVE_XX) && (500..600).contains(&status))
                    || (on.has(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
                    || (on.has(RetryOn::RETRIABLE_4XX) && status == 409)
                    || (on.has(RetryOn::RETRIABLE_STATUS_CODES)
                        && self.retriable_status_codes.contains(&status))
                    || grpc_status.is_some_and(|g| on.has(grpc_bit(g)))
            }
        }
    }

    /// Fully jittered exponential backoff before retry number `retry` (1 for the first):
    /// uniform in `[0, min(base * 2^(retry-1), max)]`, from `random`.
    pub fn backoff(&self, retry: u32, random: u64) -> Duration {
        let base = self.backoff_base.as_nanos();
        let cap = self.backoff_max.as_nanos();
        let mut upper = base;
        for _ in 1..retry {
            if upper >= cap {
                break;
            }
            upper = upper.saturating_mul(2);
        }
        let upper = upper.min(cap);
        let nanos = u128::from(random) % upper.saturating_add(1);
        // `nanos` <= `cap`, which came from a Duration: it fits.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

fn grpc_bit(code: u32) -> RetryOn {
    match code {
        1 => RetryOn::GRPC_CANCELLED,
        4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
        8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
        13 => RetryOn::GRPC_INTERNAL,
        14 => RetryOn::GRPC_UNAVAILABLE,
        _ => RetryOn(0),
    }
}

#[cfg(test)]
mod tests;
