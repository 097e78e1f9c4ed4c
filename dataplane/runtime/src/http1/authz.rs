//! The HTTP RBAC filters (Istio's AuthorizationPolicy): each filter of the connection
//! manager judges the request in order; the first denial answers 403. Every decision is
//! counted by policy, and a debug line (target `spar::rbac`) says which policy decided,
//! for whom.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use spar_http::RequestHead;
use tracing::debug;

use super::Conn;
use crate::conn::PeerIdentity;
use crate::view::joined;

/// Envoy's body for a request an RBAC filter denied.
pub(super) const BODY_RBAC_DENIED: &[u8] = b"RBAC: access denied";

impl Conn<'_> {
    /// Runs the RBAC filters on `head`: true when every filter lets it through.
    pub(super) fn authorize(&mut self, head: &RequestHead) -> bool {
        let settings = self.settings;
        if settings.rbac.is_empty() {
            return true;
        }
        let ctx = Request {
            head,
            scheme: self.scheme(),
            peer: self.peer,
            local: self.local_addr(),
            remote: client_ip(
                head,
                self.peer.ip(),
                settings.use_remote_address,
                settings.xff_num_trusted_hops,
            ),
            id: self.peer_id.as_deref(),
        };
        for filter in &settings.rbac {
            let d = filter.evaluate(&ctx);
            for (decision, shadow) in [(d.shadow, true), (d.enforced, false)] {
                let Some(decision) = decision else { continue };
                self.stats.rbac.decision(
                    decision.matched_policy,
                    decision.reason().as_str(),
                    decision.allowed,
                    shadow,
                );
                // The explanation is built only when the line is enabled.
                debug!(
                    target: "spar::rbac",
                    shadow,
                    prefix = %settings.stat_prefix,
                    "{}",
                    decision.explain(&ctx)
                );
            }
            if !d.allowed() {
                return false;
            }
        }
        true
    }
}

/// A request as the RBAC rules see it.
struct Request<'a> {
    head: &'a RequestHead,
    scheme: &'static [u8],
    peer: SocketAddr,
    local: SocketAddr,
    remote: IpAddr,
    id: Option<&'a PeerIdentity>,
}

impl spar_rbac::Context for Request<'_> {
    fn method(&self) -> &[u8] {
        self.head.method.as_bytes()
    }

    fn path(&self) -> &[u8] {
        self.head.path()
    }

    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        match lower_name {
            ":path" => Some(Cow::Borrowed(self.head.path_and_query())),
            ":authority" | "host" => self.head.authority.as_deref().map(Cow::Borrowed),
            ":scheme" => Some(Cow::Borrowed(self.scheme)),
            ":method" => Some(Cow::Borrowed(self.head.method.as_bytes())),
            name => joined(self.head, name),
        }
    }

    fn destination(&self) -> SocketAddr {
        self.local
    }

    fn direct_remote(&self) -> SocketAddr {
        self.peer
    }

    fn remote(&self) -> IpAddr {
        self.remote
    }

    fn peer_principal(&self) -> Option<&str> {
        self.id.and_then(|id| id.principal.as_deref())
    }

    fn requested_server_name(&self) -> Option<&str> {
        self.id.and_then(|id| id.sni.as_deref())
    }

    fn is_http(&self) -> bool {
        true
    }

    fn is_tls(&self) -> bool {
        self.id.is_some()
    }
}

/// The client address as Envoy's connection manager finds it (`remote_ip` in RBAC):
/// with `use_remote_address`, the peer, or with N trusted hops the Nth address from the
/// right of `x-forwarded-for`; without it, the (N+1)th from the right. The peer when the
/// header has too few addresses or the one chosen is not an IP.
pub(super) fn client_ip(
    head: &RequestHead,
    peer: IpAddr,
    use_remote_address: bool,
    xff_num_trusted_hops: u32,
) -> IpAddr {
    let hops = xff_num_trusted_hops as usize;
    let skip = match (use_remote_address, hops) {
        (true, 0) => return peer,
        (true, n) => n - 1,
        (false, n) => n,
    };
    let Some(xff) = joined(head, "x-forwarded-for") else {
        return peer;
    };
    xff.rsplit(|&b| b == b',')
        .nth(skip)
        .and_then(|a| std::str::from_utf8(a.trim_ascii()).ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(xff: &[&str]) -> RequestHead {
        let mut raw = String::from("GET / HTTP/1.1\r\nhost: a\r\n");
        for v in xff {
            raw.push_str(&format!("x-forwarded-for: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut buf = bytes::BytesMut::from(raw.as_bytes());
        spar_http::parse_request(&mut buf, &spar_http::Limits::default())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn client_address_follows_envoys_xff_rules() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let three = head(&["203.0.113.128, 203.0.113.10", "203.0.113.1"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Edge proxy: the peer, whatever the header says.
        assert_eq!(client_ip(&three, peer, true, 0), peer);
        // Edge proxy behind one trusted proxy: the rightmost entry.
        assert_eq!(client_ip(&three, peer, true, 1), ip("203.0.113.1"));
        assert_eq!(client_ip(&three, peer, true, 2), ip("203.0.113.10"));
        // Not the edge: the (N+1)th from the right.
        assert_eq!(client_ip(&three, peer, false, 0), ip("203.0.113.1"));
        assert_eq!(client_ip(&three, peer, false, 2), ip("203.0.113.128"));
        // Too few entries, no header, or garbage: the peer.
        assert_eq!(client_ip(&three, peer, false, 3), peer);
        assert_eq!(client_ip(&head(&[]), peer, false, 0), peer);
        assert_eq!(client_ip(&head(&["nope"]), peer, false, 0), peer);
    }
}
