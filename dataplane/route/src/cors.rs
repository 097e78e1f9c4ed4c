//! Envoy's CORS filter (`envoy.filters.http.cors`) as a decision. A request is a CORS
//! request when it has a non-empty `Origin` that an `allow_origins` matcher accepts (a
//! matcher that accepts `*` accepts every origin); otherwise it is forwarded untouched. A
//! CORS request is a preflight when it is `OPTIONS` with a non-empty
//! `Access-Control-Request-Method`: the proxy answers it with 200. Other CORS requests are
//! forwarded and their response gets the allow-origin headers.

use crate::fault::Fraction;
use crate::matcher::header;
use crate::{RequestView, StringMatcher};

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Origins allowed; the request's `Origin` must match one.
    pub allow_origins: Vec<StringMatcher>,
    /// `Access-Control-Allow-Methods` for preflights.
    pub allow_methods: Option<String>,
    /// `Access-Control-Allow-Headers` for preflights.
    pub allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers` for actual responses.
    pub expose_headers: Option<String>,
    /// `Access-Control-Max-Age` for preflights.
    pub max_age: Option<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Share of requests the policy applies to (`filter_enabled`, default all).
    pub enabled: Fraction,
}

/// What the CORS filter does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsDecision {
    /// Not a CORS request (no `Origin`, origin not allowed, or policy disabled): forward.
    NotCors,
    /// A preflight: answer 200 locally with these headers.
    Preflight(Vec<(&'static str, Vec<u8>)>),
    /// An actual CORS request: forward, then add these headers to the response.
    Actual(Vec<(&'static str, Vec<u8>)>),
}

impl CorsPolicy {
    /// Envoy's decision for `req`; `random` draws the `filter_enabled` fraction.
    pub fn decide(&self, req: &impl RequestView, random: u64) -> CorsDecision {
        if !self.enabled.hit(random) {
            return CorsDecision::NotCors;
        }
        let Some(origin) = header(req, "origin").filter(|o| !o.is_empty()) else {
            return CorsDecision::NotCors;
        };
        let allowed = self
            .allow_origins
            .iter()
            .any(|m| m.matches(b"*") || m.matches(&origin));
        if !allowed {
            return CorsDecision::NotCors;
        }
        let mut out = vec![("access-control-allow-origin", origin.into_owned())];
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", b"true".to_vec()));
        }
        let preflight = req.method() == b"OPTIONS"
            && header(req, "access-control-request-method").is_some_and(|m| !m.is_empty());
        let text = |name: &'static str, v: &Option<String>| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| (name, v.as_bytes().to_vec()))
        };
        if preflight {
            out.extend(text("access-control-allow-methods", &self.allow_methods));
            out.extend(text("access-control-allow-headers", &self.allow_headers));
            out.extend(text("access-control-max-age", &self.max_age));
            CorsDecision::Preflight(out)
        } else {
            out.extend(text("access-control-expose-headers", &self.expose_headers));
            CorsDecision::Actual(out)
        }
    }
}

#[cfg(test)]
mod tests;
