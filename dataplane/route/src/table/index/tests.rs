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
        "/a?q", "/a?qq", "/a#f", "*", "/c", "/b/", "",
    ];
    for round in 0..300 {
        let n = 16 + (rng.next() % 40) as usize;
        let routes: Vec<Route> = (0..n).map(|i| random_route(&mut rng, i as u32)).collect();
        let index = RouteIndex::new(&routes);
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
fn literal_segments() {
    let seg = |p: PathMatch| literal_segment(&path_match(p)).map(<[u8]>::to_vec);
    let s = |v: &str| Some(v.as_bytes().to_vec());
    assert_eq!(seg(PathMatch::Prefix("/reviews/".into())), s("reviews"));
    assert_eq!(seg(PathMatch::Prefix("/reviews".into())), None); // also /reviewsX
    assert_eq!(seg(PathMatch::Prefix("/".into())), None);
    assert_eq!(seg(PathMatch::Exact("/api".into())), s("api"));
    assert_eq!(seg(PathMatch::PathSeparatedPrefix("/v1".into())), s("v1"));
    assert_eq!(seg(PathMatch::Prefix("/q?x".into())), s("q"));
    assert_eq!(seg(PathMatch::Prefix("nope".into())), None);
    assert_eq!(request_segment(b"/a/b?c"), Some(&b"a"[..]));
    assert_eq!(request_segment(b"/a?c/d"), Some(&b"a"[..]));
    assert_eq!(request_segment(b"*"), None);
}
