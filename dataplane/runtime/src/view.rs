//! Adapters that let spar-route's pure decisions read a parsed request:
//! [`View`] answers matchers, [`Vars`] fills `%VAR%` header templates.

use std::borrow::Cow;
use std::net::SocketAddr;

use spar_http::{RequestHead, Version};
use spar_route::{FormatVars, RequestView};

/// A request as routing sees it.
pub(crate) struct View<'a> {
    pub(crate) head: &'a RequestHead,
    pub(crate) scheme: &'static [u8],
}

impl RequestView for View<'_> {
    fn method(&self) -> &[u8] {
        self.head.method.as_bytes()
    }

    fn authority(&self) -> &[u8] {
        self.head.authority.as_deref().unwrap_or(b"")
    }

    fn path(&self) -> &[u8] {
        self.head.path_and_query()
    }

    fn scheme(&self) -> &[u8] {
        self.scheme
    }

    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        joined(self.head, lower_name)
    }

    fn any_header_value(
        &self,
        lower_name: &str,
        test: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<bool> {
        let name = lower_name.as_bytes();
        let mut found = None;
        for h in &self.head.headers {
            if h.name.eq_ignore_ascii_case(name) {
                if test(&h.value) {
                    return Some(true);
                }
                found = Some(false);
            }
        }
        found
    }
}

/// Every field named `name`, joined with "," as Envoy's matchers see them;
/// borrowed when there is exactly one.
pub(crate) fn joined<'a>(head: &'a RequestHead, name: &str) -> Option<Cow<'a, [u8]>> {
    let name = name.as_bytes();
    let mut found = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = found.next()?;
    let Some(second) = found.next() else {
        return Some(Cow::Borrowed(&first.value));
    };
    let mut all = first.value.to_vec();
    for h in std::iter::once(second).chain(found) {
        all.push(b',');
        all.extend_from_slice(&h.value);
    }
    Some(Cow::Owned(all))
}

/// Values for header templates.
pub(crate) struct Vars<'a> {
    pub(crate) head: &'a RequestHead,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) hostname: &'a str,
}

impl FormatVars for Vars<'_> {
    fn downstream_remote(&self) -> SocketAddr {
        self.peer
    }

    fn downstream_local(&self) -> SocketAddr {
        self.local
    }

    fn upstream_remote(&self) -> Option<SocketAddr> {
        self.upstream
    }

    fn hostname(&self) -> &str {
        self.hostname
    }

    fn protocol(&self) -> &str {
        match self.head.version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    fn request_header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        joined(self.head, lower_name)
    }
}

/// The machine's host name, read once per worker for `%HOSTNAME%`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
