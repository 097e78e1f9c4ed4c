//! The CA's counters: certificates issued, and requests refused per [`Reason`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::Reason;

/// Counters shared by every request; relaxed atomics (a CA handles a few requests a
/// second, and readers only need eventually exact numbers).
#[derive(Debug, Default)]
pub struct Stats {
    issued: AtomicU64,
    refused: [AtomicU64; Reason::ALL.len()],
}

impl Stats {
    pub fn record_issued(&self) {
        self.issued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_refused(&self, reason: Reason) {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Requests refused for `reason` so far.
    pub fn refused(&self, reason: Reason) -> u64 {
        self.refused[reason.index()].load(Ordering::Relaxed)
    }

    /// Every counter, in Prometheus text format (`spar_ca_certificates_issued_total`,
    /// `spar_ca_requests_refused_total{reason}`).
    pub fn prometheus(&self) -> String {
        let mut out = String::from("# TYPE spar_ca_certificates_issued_total counter\n");
        out += &format!("spar_ca_certificates_issued_total {}\n", self.issued());
        out += "# TYPE spar_ca_requests_refused_total counter\n";
        for reason in Reason::ALL {
            out += &format!(
                "spar_ca_requests_refused_total{{reason=\"{}\"}} {}\n",
                reason.as_str(),
                self.refused(reason)
            );
        }
        out
    }
}
