//! Exponential backoff with jitter for retrying the API server: 200 ms doubling to 30 s,
//! each delay drawn from [50%, 100%] of the current step so that many watchers failing
//! together (the API server restarted) do not retry in lockstep.
//!
//! What it does not do: no sleeping (callers sleep the delay), no retry budget.

use std::time::Duration;

/// First delay: long enough not to spin on a refused connection, short enough that a watch
/// broken by a load balancer resumes before anyone notices.
const FIRST: Duration = Duration::from_millis(200);
/// Longest delay: client-go's reflector backs off to 30 s as well.
const MAX: Duration = Duration::from_secs(30);

/// The state of one retry loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { step: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt; the following one is twice as long (up to 30 s).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.step);
        self.step = (self.step * 2).min(MAX);
        delay
    }

    /// The longest delay, for a condition that is not expected to clear soon.
    pub(crate) fn slowest(&self) -> Duration {
        jitter(MAX)
    }

    /// After a success: the next failure starts from the first delay again.
    pub(crate) fn reset(&mut self) {
        self.step = FIRST;
    }
}

fn jitter(step: Duration) -> Duration {
    step.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= FIRST / 2 && first <= FIRST, "{first:?}");
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= MAX, "{d:?}");
        }
        let capped = b.next_delay();
        assert!(capped >= MAX / 2, "{capped:?}");
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }
}
