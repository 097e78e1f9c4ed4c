//! TokenReviews (`POST /apis/authentication.k8s.io/v1/tokenreviews`), answered as the real
//! API server answers them for service-account tokens.
//!
//! A registered token is authenticated as `system:serviceaccount:NS:NAME` when its
//! audiences meet the review's `spec.audiences` (the API server's own audience,
//! [`API_AUDIENCE`], when the review names none); `status.audiences` is the meeting. Any
//! other token, or one for other audiences, gets `authenticated` absent and an `error`, as
//! the real server answers. A fake that is not audience-aware authenticates registered
//! tokens whatever the audiences and leaves `status.audiences` out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The path TokenReviews are created at.
pub const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// The API server's own audience (what a pod's default token is for).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

struct Account {
    namespace: String,
    name: String,
    audiences: Vec<String>,
}

/// The valid tokens and the counters.
pub(super) struct Tokens {
    valid: BTreeMap<String, Account>,
    pub(super) audience_aware: bool,
    pub(super) reviews: u64,
}

impl Default for Tokens {
    fn default() -> Tokens {
        Tokens::new()
    }
}

impl Tokens {
    pub(super) fn new() -> Tokens {
        Tokens {
            valid: BTreeMap::new(),
            audience_aware: true,
            reviews: 0,
        }
    }

    pub(super) fn add(&mut self, token: &str, namespace: &str, name: &str, audiences: &[&str]) {
        self.valid.insert(
            token.to_owned(),
            Account {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            },
        );
    }

    /// The answer (HTTP status, body) to a TokenReview request body.
    pub(super) fn review(&mut self, body: &[u8]) -> (u16, Value) {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return (
                400,
                super::status_object(400, "BadRequest", "the body is not JSON"),
            );
        };
        if request["kind"] != "TokenReview" {
            return (
                400,
                super::status_object(400, "BadRequest", "the body is not a TokenReview"),
            );
        }
        self.reviews += 1;
        let spec = &request["spec"];
        let token = spec["token"].as_str().unwrap_or("");
        let wanted: Vec<String> = match spec["audiences"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => vec![API_AUDIENCE.to_owned()],
        };
        let status = match self.valid.get(token) {
            None => {
                json!({"user": {}, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"})
            }
            Some(account) if !self.audience_aware => {
                json!({"authenticated": true, "user": user(account)})
            }
            Some(account) => {
                let meet: Vec<&String> = wanted
                    .iter()
                    .filter(|w| account.audiences.contains(w))
                    .collect();
                if meet.is_empty() {
                    json!({"user": {}, "error": format!(
                        "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                        account.audiences, wanted)})
                } else {
                    json!({"authenticated": true, "user": user(account), "audiences": meet})
                }
            }
        };
        (
            201,
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                   "metadata": {"creationTimestamp": null},
                   "spec": spec, "status": status}),
        )
    }
}

fn user(account: &Account) -> Value {
    json!({"username": format!("system:serviceaccount:{}:{}", account.namespace, account.name),
           "uid": format!("uid-sa-{}-{}", account.namespace, account.name),
           "groups": ["system:serviceaccounts",
                      format!("system:serviceaccounts:{}", account.namespace),
                      "system:authenticated"]})
}
