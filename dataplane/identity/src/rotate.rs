//! The rotation task: fetch at start (retrying while the CA is down), then renew at half
//! of the certificate's life; a failed renewal keeps the current certificate and retries.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::client::create_certificate;
use crate::config::Config;
use crate::error::FetchError;
use crate::identity::{Current, Identity, rfc3339};
use crate::key;

/// First retry after a failure; doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Retries while the CA is down never wait longer than this (the renewal of a 24 h
/// certificate has 12 h of slack; a workload without one should get it soon after the CA
/// is back).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Renew at this fraction of the lifetime (Istio's `SECRET_GRACE_PERIOD_RATIO`).
const RENEW_AT: f64 = 0.5;
/// Plus or minus this fraction of the lifetime, so that workloads started together do not
/// renew together (Istio's jitter, 0.01).
const RENEW_JITTER: f64 = 0.01;
/// Never renew sooner than this after an install: a CA that returns certificates already
/// near their end would otherwise be asked in a tight loop.
const MIN_RENEW_DELAY: Duration = Duration::from_secs(1);

/// Asks the CA for a certificate with a new key and installs it if it checks out (see
/// [`Identity`]); counts the outcome. The current certificate stays on any failure.
pub async fn fetch(identity: &Identity, config: &Config) -> Result<Arc<Current>, FetchError> {
    let result = fetch_uncounted(identity, config).await;
    match &result {
        Ok(_) => identity.state.stats.success(),
        Err(e) => identity.state.stats.failure(e.reason()),
    }
    result
}

async fn fetch_uncounted(identity: &Identity, config: &Config) -> Result<Arc<Current>, FetchError> {
    let pending = key::generate(identity.spiffe_id())?;
    let csr = pending.csr_pem.clone();
    let chain = create_certificate(config, csr).await?;
    let extra = match &config.extra_roots {
        Some(source) => Some(source.read().map_err(|e| {
            FetchError::BadChain(format!("extra roots from {}: {e}", source.origin()))
        })?),
        None => None,
    };
    identity.install(pending, &chain, extra.as_deref(), SystemTime::now())
}

/// Keeps `identity` supplied with certificates until `shutdown` completes. Returns an
/// error only when `config` names another identity than `identity`.
pub async fn run(
    identity: Arc<Identity>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FetchError> {
    let wanted = config.spiffe_id()?;
    if wanted != identity.spiffe_id() {
        return Err(FetchError::Config(format!(
            "the config names {wanted}, the identity is {}",
            identity.spiffe_id()
        )));
    }
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            outcome = fetch(&identity, &config) => outcome,
        };
        let delay = match outcome {
            Ok(current) => {
                failures = 0;
                let delay = renew_delay(
                    SystemTime::now(),
                    current.not_before,
                    current.not_after,
                    fastrand::f64(),
                );
                info!(
                    identity = %current.spiffe_id,
                    serial = %current.serial,
                    not_after = %rfc3339(current.not_after),
                    trust_bundle = current.trust.version,
                    renew_in_ms = delay.as_millis() as u64,
                    "certificate installed"
                );
                delay
            }
            Err(e) => {
                let delay = backoff(failures, fastrand::f64());
                failures = failures.saturating_add(1);
                match identity.current() {
                    Some(held) => warn!(
                        reason = e.reason().as_str(),
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        held_until = %rfc3339(held.not_after),
                        "certificate renewal failed; keeping the current one"
                    ),
                    None => warn!(
                        reason = e.reason().as_str(),
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        "no certificate yet: fetch failed"
                    ),
                }
                delay
            }
        };
        debug!(
            delay_ms = delay.as_millis() as u64,
            "next certificate fetch"
        );
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// How long after `now`, the moment it was received, to renew a certificate valid from
/// `not_before` to `not_after`: at half its life plus or minus 1% (`unit` is uniform in
/// [0, 1)), and not sooner than [`MIN_RENEW_DELAY`].
///
/// The life counts from `now` when that is later than `not_before`: CAs backdate
/// `not_before` for clock skew (spar-ca by a minute), and counting from it would renew a
/// short-lived certificate at once. For a 24 h certificate the two differ by 30 s.
pub(crate) fn renew_delay(
    now: SystemTime,
    not_before: SystemTime,
    not_after: SystemTime,
    unit: f64,
) -> Duration {
    let start = now.max(not_before);
    let life = not_after.duration_since(start).unwrap_or_default();
    let fraction = RENEW_AT + (unit.clamp(0.0, 1.0) * 2.0 - 1.0) * RENEW_JITTER;
    let from_now = (start + life.mul_f64(fraction))
        .duration_since(now)
        .unwrap_or_default();
    from_now.max(MIN_RENEW_DELAY)
}

/// The wait after `failures` failures in a row (0 for the first): 100 ms doubling to 30 s,
/// each scaled by 0.8 to 1.2 (`unit` in [0, 1)) so that many workloads do not retry in step.
pub(crate) fn backoff(failures: u32, unit: f64) -> Duration {
    let base = MIN_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF);
    base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
        .clamp(MIN_BACKOFF, MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn renews_at_half_life_with_one_percent_jitter() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = 24 * 3600 * S;
        // Received at issue time, not backdated.
        assert_eq!(renew_delay(t0, t0, t0 + day, 0.5), day / 2);
        let low = renew_delay(t0, t0, t0 + day, 0.0);
        let high = renew_delay(t0, t0, t0 + day, 0.999_999);
        assert_eq!(low, day.mul_f64(0.49));
        assert!(high > day.mul_f64(0.5099) && high <= day.mul_f64(0.51));
        // Backdated by a minute: the life counts from now.
        let backdated = t0 - 60 * S;
        assert_eq!(renew_delay(t0, backdated, t0 + 4 * S, 0.5), 2 * S);
        assert_eq!(renew_delay(t0, backdated, t0 + day, 0.5), day / 2);
        // Not yet valid (the CA's clock ahead): half of the life from not_before.
        assert_eq!(renew_delay(t0, t0 + 10 * S, t0 + 110 * S, 0.5), 60 * S);
        // Expired, or absurdly short: the floor.
        assert_eq!(
            renew_delay(t0 + 2 * day, t0, t0 + day, 0.5),
            MIN_RENEW_DELAY
        );
        assert_eq!(renew_delay(t0, t0, t0 + S / 2, 0.5), MIN_RENEW_DELAY);
    }

    #[test]
    fn backoff_doubles_from_100ms_to_30s_with_jitter() {
        let mid: Vec<u64> = (0..12)
            .map(|n| backoff(n, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(
            mid,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(backoff(3, 0.0), Duration::from_millis(640));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(960));
        // Never below the floor or above the ceiling, however many failures.
        assert_eq!(backoff(0, 0.0), MIN_BACKOFF);
        assert_eq!(backoff(u32::MAX, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(40, 0.0), MAX_BACKOFF.mul_f64(0.8));
    }
}
