//! A fake Kubernetes API server for tests: plain HTTP/1.1 on 127.0.0.1, one thread per
//! connection, speaking the parts of the real protocol a list+watch client uses.
//!
//! What it serves:
//! - Discovery: `/api`, `/apis` (with each group's versions and preferred version),
//!   `/apis/GROUP`, `/apis/GROUP/VERSION` (resource lists).
//! - Lists: `GET /api/v1/PLURAL`, `/apis/GROUP/VERSION/PLURAL` and their
//!   `namespaces/NS/PLURAL` forms, answered as `kind: KindList` with
//!   `metadata.resourceVersion`; a single object by name.
//! - Watches: `?watch=true&resourceVersion=N` (and `allowWatchBookmarks`, `timeoutSeconds`)
//!   as chunked newline-delimited `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object"}`
//!   events after N; no N (or 0) starts with ADDED for every object; N older than the
//!   compacted history gets an ERROR event with a 410 Gone Status, as the real server does.
//!
//! - TokenReviews: `POST /apis/authentication.k8s.io/v1/tokenreviews` answered as the real
//!   server does for service-account tokens (see [`token_review`]).
//!
//! Test controls: [`FakeKube::apply`] / [`FakeKube::delete`] objects, [`FakeKube::break_watches`]
//! (close every open watch connection), [`FakeKube::compact`] (forget history),
//! [`FakeKube::set_available`] (answer 503 to everything), counters of LIST and WATCH
//! requests per resource; [`FakeKube::add_token`] (a valid service-account token),
//! [`FakeKube::set_audience_aware`], [`FakeKube::token_reviews`].
//!
//! What it does not do: no writes of objects over HTTP (tests change objects through the
//! handle), no authentication of its own clients, no paging (`limit` is ignored: one page), no selectors, no conversion
//! between versions beyond rewriting `apiVersion` (Istio's versions share one schema), no
//! validation of objects.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

mod http;
mod objects;
pub mod token_review;
mod watch;

use http::{Head, Target, parse_target, read_head, respond};

pub use objects::{endpoint_slice, pod, service, spar_control};

/// A kind the fake serves.
#[derive(Clone, Copy, Debug)]
pub struct Served {
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn served(
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
) -> Served {
    Served {
        group,
        versions,
        kind,
        plural,
        namespaced: true,
    }
}

const NET: &str = "networking.istio.io";
const SEC: &str = "security.istio.io";
const NET_V: &[&str] = &["v1alpha3", "v1beta1", "v1"];
const SEC_V: &[&str] = &["v1beta1", "v1"];

/// Everything the fake serves by default.
pub const SERVED: &[Served] = &[
    served(NET, NET_V, "VirtualService", "virtualservices"),
    served(NET, NET_V, "DestinationRule", "destinationrules"),
    served(NET, NET_V, "Gateway", "gateways"),
    served(NET, NET_V, "ServiceEntry", "serviceentries"),
    served(NET, NET_V, "Sidecar", "sidecars"),
    served(NET, NET_V, "WorkloadEntry", "workloadentries"),
    served(SEC, SEC_V, "PeerAuthentication", "peerauthentications"),
    served(SEC, SEC_V, "AuthorizationPolicy", "authorizationpolicies"),
    served(
        SEC,
        SEC_V,
        "RequestAuthentication",
        "requestauthentications",
    ),
    served("", &["v1"], "Service", "services"),
    served("", &["v1"], "Pod", "pods"),
    Served {
        group: "",
        versions: &["v1"],
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    served(
        "discovery.k8s.io",
        &["v1"],
        "EndpointSlice",
        "endpointslices",
    ),
];

/// (group, plural, namespace, name).
type Key = (String, String, String, String);

struct Event {
    rv: u64,
    group: String,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    events: Vec<Event>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    available: bool,
    /// Bumped by `break_watches`: watch threads of an older generation stop.
    generation: u64,
    open: Vec<(u64, TcpStream)>,
    next_conn: u64,
    /// Versions served per group (overrides [`SERVED`]'s).
    versions: BTreeMap<String, Vec<String>>,
    /// "GROUP/VERSION/PLURAL" (core: "v1/PLURAL") -> requests.
    lists: BTreeMap<String, u64>,
    watches: BTreeMap<String, u64>,
    /// TokenReviews: the valid tokens, whether audiences are checked, requests answered.
    tokens: token_review::Tokens,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeKube {
    /// Starts on a free port, serving every kind in every version of [`SERVED`].
    pub fn start() -> FakeKube {
        Self::start_on(crate::free_port(), &[])
    }

    /// Starts on `port`; `versions` replaces the served versions of the groups it names
    /// (the first one is the group's preferred version).
    pub fn start_on(port: u16, versions: &[(&str, &[&str])]) -> FakeKube {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind fake API server");
        let addr = listener.local_addr().expect("local addr");
        let mut state = State {
            available: true,
            rv: 1,
            tokens: token_review::Tokens::new(),
            ..State::default()
        };
        for s in SERVED {
            state
                .versions
                .entry(s.group.to_owned())
                .or_insert_with(|| s.versions.iter().rev().map(|v| (*v).to_owned()).collect());
        }
        for (group, vs) in versions {
            state.versions.insert(
                (*group).to_owned(),
                vs.iter().map(|v| (*v).to_owned()).collect(),
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accept = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept.clone();
                std::thread::spawn(move || serve_connection(&shared, conn));
            }
        });
        FakeKube { addr, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces an object (by apiVersion's group, kind, namespace, name); returns
    /// its new resourceVersion.
    pub fn apply(&self, mut object: Value) -> u64 {
        let api_version = object["apiVersion"].as_str().unwrap_or("").to_owned();
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_owned();
        let kind = object["kind"].as_str().unwrap_or("").to_owned();
        let served = SERVED
            .iter()
            .find(|s| s.group == group && s.kind == kind)
            .unwrap_or_else(|| panic!("the fake does not serve {api_version} {kind}"));
        let namespace = if served.namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let mut st = self.shared.lock();
        st.rv += 1;
        let rv = st.rv;
        if served.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{group}-{kind}-{namespace}-{name}"));
        let key = (
            group.clone(),
            served.plural.to_owned(),
            namespace.clone(),
            name,
        );
        let kind_word = if st.objects.insert(key, object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.events.push(Event {
            rv,
            group,
            plural: served.plural.to_owned(),
            namespace,
            kind: kind_word,
            object,
        });
        drop(st);
        self.shared.changed.notify_all();
        rv
    }

    /// Deletes an object; false when there was none.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_owned();
        let Some(served) = SERVED.iter().find(|s| s.group == group && s.kind == kind) else {
            return false;
        };
        let namespace = if served.namespaced { namespace } else { "" };
        let key = (
            group.clone(),
            served.plural.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        let mut st = self.shared.lock();
        let Some(mut object) = st.objects.remove(&key) else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.events.push(Event {
            rv,
            group,
            plural: served.plural.to_owned(),
            namespace: namespace.to_owned(),
            kind: "DELETED",
            object,
        });
        drop(st);
        self.shared.changed.notify_all();
        true
    }

    /// Closes every open watch connection (as a load balancer or an API server restart
    /// would); clients must resume.
    pub fn break_watches(&self) {
        let mut st = self.shared.lock();
        st.generation += 1;
        for (_, conn) in st.open.drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Forgets the event history: a watch from any resourceVersion older than the current
    /// one gets 410 Gone (an open watch that is behind gets it too).
    pub fn compact(&self) {
        let mut st = self.shared.lock();
        st.compacted = st.rv;
        st.events.clear();
    }

    /// When false, every request gets 503 and open watches are closed.
    pub fn set_available(&self, available: bool) {
        self.shared.lock().available = available;
        if !available {
            self.break_watches();
        }
    }

    /// LIST requests for `plural` (any group and version).
    pub fn lists(&self, plural: &str) -> u64 {
        count(&self.shared.lock().lists, plural)
    }

    /// WATCH requests for `plural` (any group and version).
    pub fn watches(&self, plural: &str) -> u64 {
        count(&self.shared.lock().watches, plural)
    }

    /// LIST requests per "GROUP/VERSION/PLURAL".
    pub fn list_paths(&self) -> BTreeMap<String, u64> {
        self.shared.lock().lists.clone()
    }

    /// Watch connections open now.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().open.len()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Makes `token` a valid token of service account `namespace/name` for `audiences`
    /// (a projected token's audiences; a pod's default token has the API server's,
    /// [`token_review::API_AUDIENCE`]).
    pub fn add_token(&self, token: &str, namespace: &str, name: &str, audiences: &[&str]) {
        self.shared
            .lock()
            .tokens
            .add(token, namespace, name, audiences);
    }

    /// When false, TokenReviews ignore audiences and answer without `status.audiences`,
    /// as an authenticator that is not audience-aware does (default: true).
    pub fn set_audience_aware(&self, aware: bool) {
        self.shared.lock().tokens.audience_aware = aware;
    }

    /// TokenReviews answered so far.
    pub fn token_reviews(&self) -> u64 {
        self.shared.lock().tokens.reviews
    }
}

fn count(map: &BTreeMap<String, u64>, plural: &str) -> u64 {
    map.iter()
        .filter(|(k, _)| k.rsplit('/').next() == Some(plural))
        .map(|(_, n)| n)
        .sum()
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.break_watches();
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(shared: &Shared, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    loop {
        let Some(Head {
            method,
            target,
            body,
        }) = read_head(&mut conn, &mut buf)
        else {
            return;
        };
        if !shared.lock().available {
            let status = status_object(503, "ServiceUnavailable", "the fake is unavailable");
            let _ = respond(&mut conn, 503, &status, true);
            return;
        }
        let t = parse_target(&target);
        if method == "POST" {
            let (code, reply) = match t.path.as_str() {
                token_review::PATH => shared.lock().tokens.review(&body),
                _ => (
                    405,
                    status_object(
                        405,
                        "MethodNotAllowed",
                        "the fake only creates TokenReviews",
                    ),
                ),
            };
            if respond(&mut conn, code, &reply, false).is_err() {
                return;
            }
            continue;
        }
        let keep = match route(shared, &t) {
            Reply::Json(code, body) => respond(&mut conn, code, &body, false).is_ok(),
            Reply::Watch(w) => {
                watch::stream(shared, conn, w);
                return;
            }
        };
        if !keep {
            return;
        }
    }
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

enum Reply {
    Json(u16, Value),
    Watch(WatchRequest),
}

struct WatchRequest {
    served: &'static Served,
    version: String,
    namespace: Option<String>,
    from: Option<u64>,
    bookmarks: bool,
    timeout: Duration,
}

fn not_found(what: &str) -> Reply {
    Reply::Json(
        404,
        status_object(404, "NotFound", &format!("{what} not found")),
    )
}

fn route(shared: &Shared, t: &Target) -> Reply {
    let segments: Vec<&str> = t.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut st = shared.lock();
    let served_versions = |group: &str| st.versions.get(group).cloned().unwrap_or_default();
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["api"] => {
            return Reply::Json(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            );
        }
        ["apis"] => {
            let groups: Vec<Value> = st
                .versions
                .iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| api_group(g, vs))
                .collect();
            return Reply::Json(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            );
        }
        ["apis", g] => {
            let vs = served_versions(g);
            if vs.is_empty() {
                return not_found(g);
            }
            return Reply::Json(200, api_group(g, &vs));
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return not_found(&t.path),
    };
    if !served_versions(group).iter().any(|v| v == version) {
        return not_found(&format!("{group}/{version}"));
    }
    let in_group = || SERVED.iter().filter(move |s| s.group == group);
    if rest.is_empty() {
        let resources: Vec<Value> = in_group()
            .map(|s| {
                json!({"name": s.plural, "singularName": s.kind.to_ascii_lowercase(),
                       "namespaced": s.namespaced, "kind": s.kind,
                       "verbs": ["get", "list", "watch"]})
            })
            .collect();
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        return Reply::Json(
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        );
    }
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return not_found(&t.path),
    };
    let Some(served) = in_group().find(|s| s.plural == plural) else {
        return not_found(plural);
    };
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let matches = |k: &Key| k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns);
    let with_version = |o: &Value| {
        let mut o = o.clone();
        o["apiVersion"] = json!(api_version);
        o
    };
    if let Some(name) = name {
        let ns = namespace.unwrap_or("");
        return match st.objects.get(&(
            group.to_owned(),
            plural.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        )) {
            Some(o) => Reply::Json(200, with_version(o)),
            None => not_found(name),
        };
    }
    let counter_key = format!("{api_version}/{plural}");
    let watch = t
        .query
        .get("watch")
        .is_some_and(|w| w == "true" || w == "1");
    if watch {
        *st.watches.entry(counter_key).or_default() += 1;
        let from = t
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0);
        let timeout = t
            .query
            .get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        return Reply::Watch(WatchRequest {
            served,
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            from,
            bookmarks: t
                .query
                .get("allowWatchBookmarks")
                .is_some_and(|b| b == "true"),
            timeout,
        });
    }
    *st.lists.entry(counter_key).or_default() += 1;
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|(k, _)| matches(k))
        .map(|(_, o)| with_version(o))
        .collect();
    Reply::Json(
        200,
        json!({"kind": format!("{}List", served.kind), "apiVersion": api_version,
               "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group,
           "versions": versions.iter().map(gv).collect::<Vec<_>>(),
           "preferredVersion": versions.first().map(gv)})
}
