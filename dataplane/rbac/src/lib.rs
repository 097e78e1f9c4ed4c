//! Authorization as Envoy's RBAC filters decide it: Istio's `AuthorizationPolicy` reaches a
//! proxy as an HTTP filter (`envoy.extensions.filters.http.rbac.v3.RBAC`) or a network
//! filter (`...network.rbac.v3.RBAC`), each holding `RBAC { action, policies }` rules.
//!
//! What it does:
//! - [`compile_http_filter`], [`compile_network_filter`], [`compile_http_per_route`],
//!   [`compile_rbac`]: envoy-types structs into a [`RbacFilter`] / [`Rbac`], refusing
//!   what is not supported with the path of the field ([`CompileErrors`]).
//! - [`Rbac::evaluate`] and [`RbacFilter::evaluate`]: a request or connection, seen
//!   through [`Context`], against the rules, giving a [`Decision`] (allowed, the matched
//!   policy, a [`Reason`] for metrics, [`Decision::explain`] for debug logs).
//!
//! What it does not do: no I/O, no clock, no globals, no logging or counting (the caller
//! does both with the decision), no `x-forwarded-for` parsing (the caller passes the
//! remote address it trusts), no translation of Istio's `AuthorizationPolicy` (the
//! control plane's job), no running of several filters in order (the caller's filter
//! chain does that, stopping at the first denial). Matchers (`StringMatcher`,
//! `HeaderMatcher`, `SafeRegex`) are spar-route's.

#![forbid(unsafe_code)]

mod compile;
mod eval;
mod model;
#[cfg(test)]
mod test_support;

pub use compile::{
    CompileError, CompileErrors, compile_http_filter, compile_http_per_route,
    compile_network_filter, compile_rbac,
};
pub use eval::{Context, Decision, FilterDecision, Reason};
pub use model::{
    Action, Cidr, Enforcement, FilterKind, PerRoute, Permission, Policy, Principal, Rbac,
    RbacFilter,
};
