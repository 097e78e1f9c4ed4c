//! One request from routing to its answer: the route lookup, the filters
//! Envoy runs before the router (RBAC, CORS, fault injection), and the route's
//! action: a redirect or direct response answered here, or a forward
//! (`forward.rs`).

use spar_http::{Method, RequestBody, RequestHead};
use spar_route::{Abort, Action, CorsDecision, HeaderEdits, HeaderMutation, Route, VirtualHost};
use spar_telemetry::Flag;

use super::authz::BODY_RBAC_DENIED;
use super::{BODY_UPGRADE, Conn, Next};
use crate::view::View;

/// Envoy's body for a fault-filter abort.
const BODY_FAULT_ABORT: &[u8] = b"fault filter abort";

/// Response fields a local answer carries: (name, value) pairs owned here.
pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

impl Conn<'_> {
    pub(super) async fn request(&mut self, head: RequestHead) -> Next {
        self.grpc = head
            .header("content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"));
        let has_body = !matches!(head.body, RequestBody::None | RequestBody::Length(0));
        // A reply sent without reading the request body leaves the stream
        // out of step: close unless there was no body.
        let close_after_reply = has_body || !head.keep_alive;
        let after_reply = if close_after_reply {
            Next::Close
        } else {
            Next::KeepAlive
        };

        let connect = matches!(head.method, Method::Connect);
        if connect && self.down.is_h2() {
            // CONNECT over HTTP/2 (a tunnel in DATA frames) is not carried yet.
            self.local_reply(501, b"", false).await;
            return Next::KeepAlive;
        }
        // The connection's snapshot, by reference: no count to bump per request.
        let local = self.local;
        let settings = self.settings;
        let view = View {
            head: &head,
            scheme: self.scheme(),
        };
        let routed = settings.routes.route(&view);
        // An upgrade (WebSocket) goes through only when its type is enabled
        // for the route, or else for the connection manager (Envoy's rule).
        let token = if connect {
            Some(&b"connect"[..])
        } else {
            head.upgrade.as_deref()
        };
        // Without a route the answer is the router's 404 (after authorization).
        if let (Some(token), Some((_, route))) = (token, routed) {
            let route_level = match &route.action {
                Action::Forward(a) => a.upgrades.as_slice(),
                _ => &[],
            };
            if !upgrade_enabled(token, route_level, &settings.upgrades) {
                self.local_reply(403, BODY_UPGRADE, true).await;
                return Next::Close;
            }
        }
        // Authorization comes first among the filters, before CORS (so a preflight
        // needs an allowing policy, as in Istio) and before the router's 404.
        if !self.authorize(&head) {
            self.local_reply(403, BODY_RBAC_DENIED, close_after_reply)
                .await;
            return after_reply;
        }
        let Some((vh, route)) = routed else {
            self.stats.flag(Flag::NoRoute);
            self.local_reply(404, b"", close_after_reply).await;
            return after_reply;
        };

        // CORS, as Envoy's filter: a preflight from an allowed origin is
        // answered here; an actual request gets the CORS fields on its
        // response.
        let mut cors_fields = Vec::new();
        if settings.cors_enabled
            && let Some(policy) = route.cors.as_ref().or(vh.cors.as_ref())
        {
            match policy.decide(&view, self.random()) {
                CorsDecision::NotCors => {}
                CorsDecision::Preflight(fields) => {
                    self.stats.cors_preflight.inc();
                    let fields = fields
                        .into_iter()
                        .map(|(n, v)| (n.as_bytes().to_vec(), v))
                        .collect();
                    self.local_answer(&head, vh, route, 200, b"", fields, close_after_reply)
                        .await;
                    return after_reply;
                }
                CorsDecision::Actual(fields) => cors_fields = fields,
            }
        }

        // Fault injection: the route's policy, else the virtual host's, else
        // the filter's own.
        if let Some(fault) = route
            .fault
            .as_ref()
            .or(vh.fault.as_ref())
            .or(settings.fault.as_ref())
        {
            let (r1, r2) = (self.random(), self.random());
            let decision = fault.decide(&view, r1, r2);
            let active = self.ctx.active_faults.get();
            let room = fault.max_active_faults.is_none_or(|max| active < max);
            if room && (decision.delay.is_some() || decision.abort.is_some()) {
                self.ctx.active_faults.set(active + 1);
                if let Some(delay) = decision.delay {
                    self.stats.fault_delays_injected.inc();
                    self.stats.flag(Flag::DelayInjected);
                    monoio::time::sleep(delay).await;
                }
                self.ctx.active_faults.set(self.ctx.active_faults.get() - 1);
                if let Some(abort) = decision.abort {
                    self.stats.fault_aborts_injected.inc();
                    self.stats.flag(Flag::FaultInjected);
                    let (status, fields) = match abort {
                        Abort::Http(status) => (status, Vec::new()),
                        Abort::Grpc(code) => (
                            200,
                            vec![
                                (b"content-type".to_vec(), b"application/grpc".to_vec()),
                                (b"grpc-status".to_vec(), code.to_string().into_bytes()),
                                (b"grpc-message".to_vec(), BODY_FAULT_ABORT.to_vec()),
                            ],
                        ),
                    };
                    let body = if fields.is_empty() {
                        BODY_FAULT_ABORT
                    } else {
                        b""
                    };
                    self.local_answer(&head, vh, route, status, body, fields, close_after_reply)
                        .await;
                    return after_reply;
                }
            }
        }

        match &route.action {
            Action::Redirect(r) => {
                self.stats.downstream_rq_redirect.inc();
                let location = r.location(&view, &route.r#match);
                let fields = vec![(b"location".to_vec(), location)];
                self.local_answer(&head, vh, route, r.status, b"", fields, close_after_reply)
                    .await;
                after_reply
            }
            Action::Direct(d) => {
                self.stats.downstream_rq_direct_response.inc();
                let body = d.body.clone().unwrap_or_default();
                self.local_answer(
                    &head,
                    vh,
                    route,
                    d.status,
                    &body,
                    Vec::new(),
                    close_after_reply,
                )
                .await;
                after_reply
            }
            Action::Forward(action) if connect && action.connect_terminate => {
                self.connect_here(&head, local, vh, route, action).await
            }
            Action::Forward(action) => {
                self.forward(&head, local, vh, route, action, cors_fields)
                    .await
            }
        }
    }

    /// A reply made here for a routed request: the route's response header
    /// mutations apply to it as to an upstream response.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn local_answer(
        &mut self,
        head: &RequestHead,
        vh: &VirtualHost,
        route: &Route,
        status: u16,
        body: &[u8],
        mut fields: Fields,
        close: bool,
    ) {
        let levels = [
            &route.response_headers,
            &vh.response_headers,
            &self.settings.routes.headers().response,
        ];
        if levels.iter().any(|m| !m.is_empty()) {
            let edits = self.plan_edits(head, None, &levels, &|name: &str| {
                fields
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            });
            fields.retain(|(n, _)| {
                !edits
                    .remove
                    .iter()
                    .any(|r| n.eq_ignore_ascii_case(r.as_bytes()))
            });
            fields.extend(edits.add.into_iter().map(|(n, v)| (n.into_bytes(), v)));
        }
        let refs: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        self.local_reply_with(status, body, close, &refs).await;
    }

    /// Folds header mutations, most specific first, into one edit plan.
    /// Free when there are none (the common case).
    pub(super) fn plan_edits(
        &mut self,
        head: &RequestHead,
        upstream: Option<std::net::SocketAddr>,
        levels: &[&HeaderMutation],
        has: &dyn Fn(&str) -> bool,
    ) -> HeaderEdits {
        let mut edits = HeaderEdits::default();
        if levels.iter().all(|m| m.is_empty()) {
            return edits;
        }
        let local = self.local_addr();
        let vars = crate::view::Vars {
            head,
            peer: self.peer,
            local,
            upstream,
            hostname: &self.ctx.hostname,
        };
        for m in levels.iter().filter(|m| !m.is_empty()) {
            edits.apply(m, has, &vars);
        }
        edits
    }

    /// `https` when the downstream connection is TLS, else `http`.
    pub(super) fn scheme(&self) -> &'static [u8] {
        if self.down.is_tls() {
            b"https"
        } else {
            b"http"
        }
    }

    /// A random number from the worker's generator.
    pub(super) fn random(&self) -> u64 {
        self.ctx.rng.borrow_mut().u64(..)
    }
}

/// Whether the upgrade `token` is enabled: the route's setting for that type when it has
/// one, else the connection manager's, else not.
fn upgrade_enabled(token: &[u8], route: &[(String, bool)], manager: &[(String, bool)]) -> bool {
    let find = |list: &[(String, bool)]| {
        list.iter()
            .find(|(t, _)| token.eq_ignore_ascii_case(t.as_bytes()))
            .map(|(_, on)| *on)
    };
    find(route).or_else(|| find(manager)).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::upgrade_enabled;

    #[test]
    fn upgrade_types_route_first_then_manager() {
        let ws = |on: bool| vec![("websocket".to_owned(), on)];
        assert!(upgrade_enabled(b"WebSocket", &[], &ws(true)));
        assert!(!upgrade_enabled(b"websocket", &[], &[]));
        assert!(!upgrade_enabled(b"h2c", &[], &ws(true)));
        assert!(!upgrade_enabled(b"websocket", &ws(false), &ws(true)));
        assert!(upgrade_enabled(b"websocket", &ws(true), &ws(false)));
    }
}
