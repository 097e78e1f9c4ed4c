//! The network RBAC filters of a filter chain (Istio's AuthorizationPolicy for TCP): they
//! judge a connection once, after TLS (so the peer's identity is known) and before any
//! byte is relayed; a denial closes the connection, after `delay_deny` if the filter
//! asks. HTTP fields never match here (spar-rbac gives network filters a TCP view).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use spar_rbac::RbacFilter;
use spar_telemetry::RbacStats;
use tracing::debug;

use crate::conn::PeerIdentity;

/// A connection as network RBAC rules see it.
struct Connection<'a> {
    peer: SocketAddr,
    local: SocketAddr,
    id: Option<&'a PeerIdentity>,
}

impl spar_rbac::Context for Connection<'_> {
    fn method(&self) -> &[u8] {
        b""
    }

    fn path(&self) -> &[u8] {
        b""
    }

    fn header(&self, _: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        None
    }

    fn destination(&self) -> SocketAddr {
        self.local
    }

    fn direct_remote(&self) -> SocketAddr {
        self.peer
    }

    fn remote(&self) -> IpAddr {
        self.peer.ip()
    }

    fn peer_principal(&self) -> Option<&str> {
        self.id.and_then(|id| id.principal.as_deref())
    }

    fn requested_server_name(&self) -> Option<&str> {
        self.id.and_then(|id| id.sni.as_deref())
    }

    fn is_http(&self) -> bool {
        false
    }

    fn is_tls(&self) -> bool {
        self.id.is_some()
    }
}

/// Runs `filters` on a connection; `Err(delay)` when one denies it (close after `delay`).
pub(crate) fn connection(
    filters: &[Arc<RbacFilter>],
    stats: &RbacStats,
    listener: &str,
    peer: SocketAddr,
    local: SocketAddr,
    id: Option<&PeerIdentity>,
) -> Result<(), Option<std::time::Duration>> {
    let ctx = Connection { peer, local, id };
    for filter in filters {
        let d = filter.evaluate(&ctx);
        for (decision, shadow) in [(d.shadow, true), (d.enforced, false)] {
            let Some(decision) = decision else { continue };
            stats.decision(
                decision.matched_policy,
                decision.reason().as_str(),
                decision.allowed,
                shadow,
            );
            debug!(target: "spar::rbac", shadow, listener, "{}", decision.explain(&ctx));
        }
        if !d.allowed() {
            return Err(filter.delay_deny);
        }
    }
    Ok(())
}
