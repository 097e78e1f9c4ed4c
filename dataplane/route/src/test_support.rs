//! A request and format variables for the unit tests.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::{
    Action, ClusterId, ClusterRef, FormatVars, HeaderMutation, PathMatch, RequestView, Route,
    RouteAction, RouteMatch, Target,
};

/// A request: `GET http://example.com/` unless changed with the builder methods.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) method: Vec<u8>,
    pub(crate) authority: Vec<u8>,
    pub(crate) path: Vec<u8>,
    pub(crate) scheme: Vec<u8>,
    /// (lower-case name, value) in order; repeated names are joined with ",".
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

impl Req {
    pub(crate) fn new(path: &str) -> Self {
        Self {
            method: b"GET".to_vec(),
            authority: b"example.com".to_vec(),
            path: path.as_bytes().to_vec(),
            scheme: b"http".to_vec(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn method(mut self, m: &str) -> Self {
        self.method = m.as_bytes().to_vec();
        self
    }

    pub(crate) fn authority(mut self, a: &str) -> Self {
        self.authority = a.as_bytes().to_vec();
        self
    }

    pub(crate) fn scheme(mut self, s: &str) -> Self {
        self.scheme = s.as_bytes().to_vec();
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }
}

impl RequestView for Req {
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn authority(&self) -> &[u8] {
        &self.authority
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn scheme(&self) -> &[u8] {
        &self.scheme
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n == lower_name)
            .map(|(_, v)| v.as_slice());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut all = first.to_vec();
                for v in std::iter::once(second).chain(values) {
                    all.push(b',');
                    all.extend_from_slice(v);
                }
                Some(Cow::Owned(all))
            }
        }
    }
    fn any_header_value(
        &self,
        lower_name: &str,
        test: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<bool> {
        let mut found = None;
        for (_, v) in self.headers.iter().filter(|(n, _)| n == lower_name) {
            if test(v) {
                return Some(true);
            }
            found = Some(false);
        }
        found
    }
}

/// Format variables with fixed addresses.
pub(crate) struct Vars {
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) req: Req,
}

impl Vars {
    pub(crate) fn new() -> Self {
        Self {
            upstream: None,
            req: Req::new("/"),
        }
    }
}

impl FormatVars for Vars {
    fn downstream_remote(&self) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 40000))
    }
    fn downstream_local(&self) -> SocketAddr {
        "[::1]:15001".parse().expect("literal")
    }
    fn upstream_remote(&self) -> Option<SocketAddr> {
        self.upstream
    }
    fn hostname(&self) -> &str {
        "node-1"
    }
    fn protocol(&self) -> &str {
        "HTTP/1.1"
    }
    fn request_header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        RequestView::header(&self.req, lower_name)
    }
}

pub(crate) fn cluster(id: u32) -> ClusterRef {
    ClusterRef {
        id: ClusterId(id),
        name: format!("c{id}"),
    }
}

pub(crate) fn forward(id: u32) -> RouteAction {
    RouteAction {
        target: Target::Cluster(cluster(id)),
        timeout: Some(crate::DEFAULT_ROUTE_TIMEOUT),
        idle_timeout: None,
        grpc_timeout_max: None,
        connect_terminate: false,
        prefix_rewrite: None,
        regex_rewrite: None,
        host_rewrite: None,
        retry: None,
        hash_policy: Vec::new(),
        mirrors: Vec::new(),
        metadata_match: None,
        upgrades: Vec::new(),
    }
}

pub(crate) fn path_match(path: PathMatch) -> RouteMatch {
    RouteMatch {
        path,
        case_sensitive: true,
        headers: Vec::new(),
        query: Vec::new(),
    }
}

/// A route forwarding to cluster `id`.
pub(crate) fn route(m: RouteMatch, id: u32) -> Route {
    Route {
        name: String::new(),
        r#match: m,
        action: Action::Forward(forward(id)),
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        fault: None,
        cors: None,
    }
}

/// The cluster id a route forwards to (single-cluster routes only).
pub(crate) fn cluster_of(r: &Route) -> Option<u32> {
    match &r.action {
        Action::Forward(RouteAction {
            target: Target::Cluster(c),
            ..
        }) => Some(c.id.0),
        _ => None,
    }
}
