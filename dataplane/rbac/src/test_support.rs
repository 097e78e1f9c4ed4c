//! Test helpers: a request/connection context with builder methods, and short
//! constructors for matchers and policies. Test-only.

use std::net::{IpAddr, SocketAddr};

use spar_route::{HeaderMatcher, HeaderRule, SafeRegex, StringMatch, StringMatcher};

use crate::{Action, Context, Permission, Policy, Principal, Rbac};

/// A request (or, with `tcp()`, a connection) to evaluate.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) http: bool,
    pub(crate) method: Vec<u8>,
    pub(crate) path: Vec<u8>,
    /// Joined values, as [`Context::header`] returns them.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) destination: SocketAddr,
    pub(crate) direct_remote: SocketAddr,
    pub(crate) remote: IpAddr,
    pub(crate) source: Option<IpAddr>,
    pub(crate) principal: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) other_names: Vec<String>,
    pub(crate) sni: Option<String>,
}

impl Req {
    /// `GET /` from 10.0.0.7 (direct and remote) to 10.0.0.1:8080, plaintext.
    pub(crate) fn get(path: &str) -> Self {
        Self {
            http: true,
            method: b"GET".to_vec(),
            path: path.as_bytes().to_vec(),
            headers: Vec::new(),
            destination: sa("10.0.0.1:8080"),
            direct_remote: sa("10.0.0.7:40000"),
            remote: ip("10.0.0.7"),
            source: None,
            principal: None,
            tls: None,
            other_names: Vec::new(),
            sni: None,
        }
    }

    /// A TCP connection with the same addresses.
    pub(crate) fn tcp() -> Self {
        Self {
            http: false,
            method: Vec::new(),
            path: Vec::new(),
            ..Self::get("")
        }
    }

    pub(crate) fn method(mut self, m: &str) -> Self {
        self.method = m.as_bytes().to_vec();
        self
    }

    /// Adds a field; a repeated name is joined with `,`.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        match self.headers.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push(b',');
                v.extend_from_slice(value.as_bytes());
            }
            None => self
                .headers
                .push((name.to_owned(), value.as_bytes().to_vec())),
        }
        self
    }

    pub(crate) fn principal(mut self, p: &str) -> Self {
        self.principal = Some(p.to_owned());
        self
    }

    pub(crate) fn destination(mut self, d: &str) -> Self {
        self.destination = sa(d);
        self
    }

    pub(crate) fn remote(mut self, r: &str) -> Self {
        self.remote = ip(r);
        self
    }

    pub(crate) fn direct_remote(mut self, r: &str) -> Self {
        self.direct_remote = sa(r);
        self
    }

    pub(crate) fn sni(mut self, s: &str) -> Self {
        self.sni = Some(s.to_owned());
        self
    }
}

impl Context for Req {
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn header(&self, lower_name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        assert!(self.http, "header({lower_name}) asked on TCP");
        self.headers
            .iter()
            .find(|(n, _)| n == lower_name)
            .map(|(_, v)| std::borrow::Cow::Borrowed(v.as_slice()))
    }
    fn destination(&self) -> SocketAddr {
        self.destination
    }
    fn direct_remote(&self) -> SocketAddr {
        self.direct_remote
    }
    fn remote(&self) -> IpAddr {
        self.remote
    }
    fn peer_principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }
    fn requested_server_name(&self) -> Option<&str> {
        self.sni.as_deref()
    }
    fn is_http(&self) -> bool {
        self.http
    }
    fn source(&self) -> IpAddr {
        self.source.unwrap_or(self.direct_remote.ip())
    }
    fn is_tls(&self) -> bool {
        self.tls.unwrap_or(self.principal.is_some())
    }
    fn peer_other_names(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.other_names.iter().any(|n| test(n))
    }
}

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn sm(kind: StringMatch) -> StringMatcher {
    StringMatcher {
        kind,
        ignore_case: false,
    }
}

pub(crate) fn exact(s: &str) -> StringMatcher {
    sm(StringMatch::Exact(s.to_owned()))
}

pub(crate) fn prefix(s: &str) -> StringMatcher {
    sm(StringMatch::Prefix(s.to_owned()))
}

pub(crate) fn regex(s: &str) -> StringMatcher {
    sm(StringMatch::Regex(SafeRegex::new(s).unwrap()))
}

/// A header matcher, not inverted.
pub(crate) fn hm(name: &str, rule: HeaderRule) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        rule,
        invert: false,
        treat_missing_as_empty: false,
    }
}

/// `header: {name, string_match: {exact}}`.
pub(crate) fn hdr(name: &str, value: &str) -> HeaderMatcher {
    hm(name, HeaderRule::Value(exact(value)))
}

pub(crate) fn policy(
    name: &str,
    permissions: Vec<Permission>,
    principals: Vec<Principal>,
) -> Policy {
    Policy {
        name: name.to_owned(),
        permissions,
        principals,
    }
}

pub(crate) fn rbac(action: Action, policies: Vec<Policy>) -> Rbac {
    Rbac::new(action, policies)
}
