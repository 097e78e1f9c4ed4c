#![allow(clippy::unwrap_used)]

use super::*;
use crate::SafeRegex;
use crate::test_support::{Req, cluster_of, path_match, route};

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "", "/", "/a", "/a/", "/ab", "/ab/c", "/b", "/b?x", "/a?q", "/A/", "/a#f",
];

fn random_route(rng: &mut Rng, id: u32) -> Route {
    let lit = rng.pick(PIECES).to_owned();
    let path = match rng.next() % 5 {
        0 => PathMatch::Exact(lit),
        1 => PathMatch::PathSeparatedPrefix(lit.trim_end_matches('/').to_owned()),
        2 => PathMatch::Regex(SafeRegex::new("/a.*").unwrap()),
        _ => PathMatch::Prefix(lit),
    };
    let mut m = path_match(path);
    m.case_sensitive = !rng.next().is_multiple_of(4);
    route(m, id)
}

#[test]
fn index_finds_the_same_first_route_as_a_scan() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let targets = [
        "/", "/a", "/a/", "/a/x", "/ab", "/ab/c", "/abc", "/A", "/A/", "/b", "/b?x", "/b?xy",
        "/a?q", "/a?qq", "/a#f", "*", "/c", "/b/", "", "/ab/cd", "/a/b", "/aa",
    ];
    for round in 0..300 {
        let n = 16 + (rng.next() % 40) as usize;
        let routes: Vec<Route> = (0..n).map(|i| random_route(&mut rng, i as u32)).collect();
        let Some(index) = RouteIndex::new(&routes) else {
            continue;
        };
        for t in targets {
            let req = Req::new(t);
            let scanned = routes.iter().find(|r| r.matches(&req)).and_then(cluster_of);
            let indexed = index.first_match(&routes, &req).and_then(cluster_of);
            assert_eq!(
                indexed, scanned,
                "round {round}, target {t:?}, routes {routes:#?}"
            );
        }
    }
}

#[test]
fn deepest_prefix_follows_parents() {
    let m = |p: &str| route(path_match(PathMatch::Prefix(p.into())), 0);
    let routes: Vec<Route> = ["/", "/api/", "/api/v1/", "/api/v1/users", "/apix", "/b"]
        .iter()
        .map(|p| m(p))
        .chain((0..16).map(|i| m(&format!("/z{i}"))))
        .collect();
    let index = RouteIndex::new(&routes).unwrap();
    let deepest = |p: &str| {
        index
            .deepest_prefix(p.as_bytes())
            .map(|i| &*index.literals[i])
    };
    assert_eq!(deepest("/api/v1/users/7"), Some(&b"/api/v1/users"[..]));
    assert_eq!(deepest("/api/v1/orders"), Some(&b"/api/v1/"[..]));
    assert_eq!(deepest("/api/v2"), Some(&b"/api/"[..]));
    assert_eq!(deepest("/apiz"), Some(&b"/"[..]));
    assert_eq!(deepest("/b"), Some(&b"/b"[..]));
    assert_eq!(deepest("*"), None);
}
