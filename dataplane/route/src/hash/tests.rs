use std::net::IpAddr;
use std::time::Duration;

use xxhash_rust::xxh64::xxh64;

use crate::test_support::Req;
use crate::*;

fn entry(policy: HashPolicy, terminal: bool) -> HashPolicyEntry {
    HashPolicyEntry { policy, terminal }
}

fn header(name: &str) -> HashPolicy {
    HashPolicy::Header { name: name.into() }
}

#[test]
fn hashes() {
    let ip: IpAddr = "10.0.0.1".parse().expect("literal");
    let req = Req::new("/p?user=bob&x=1")
        .header("x-user", "alice")
        .header("cookie", "a=1; session=\"s1\"; b=2");
    let h = |v: &str| xxh64(v.as_bytes(), 0);
    let combine = |a: u64, b: u64| a.rotate_left(1) ^ b;
    let cookie = |name: &str| HashPolicy::Cookie {
        name: name.into(),
        ttl: None,
        path: None,
    };
    // (policies, hash)
    let cases: Vec<(Vec<HashPolicyEntry>, Option<u64>)> = vec![
        (vec![], None),
        (vec![entry(header("x-user"), false)], Some(h("alice"))),
        (vec![entry(header("x-none"), false)], None),
        (
            vec![entry(header(":path"), false)],
            Some(h("/p?user=bob&x=1")),
        ),
        (vec![entry(cookie("session"), false)], Some(h("s1"))),
        (vec![entry(cookie("b"), false)], Some(h("2"))),
        (vec![entry(cookie("nope"), false)], None),
        (
            vec![entry(HashPolicy::SourceIp, false)],
            Some(h("10.0.0.1")),
        ),
        (
            vec![entry(
                HashPolicy::Query {
                    name: "user".into(),
                },
                false,
            )],
            Some(h("bob")),
        ),
        (
            vec![entry(
                HashPolicy::Query {
                    name: "none".into(),
                },
                false,
            )],
            None,
        ),
        // Combined in order; a missing value is skipped.
        (
            vec![
                entry(header("x-none"), false),
                entry(header("x-user"), false),
                entry(HashPolicy::SourceIp, false),
            ],
            Some(combine(h("alice"), h("10.0.0.1"))),
        ),
        // Equal policies do not cancel out.
        (
            vec![
                entry(header("x-user"), false),
                entry(header("x-user"), false),
            ],
            Some(combine(h("alice"), h("alice"))),
        ),
        // Terminal stops once a hash exists ...
        (
            vec![
                entry(header("x-user"), true),
                entry(HashPolicy::SourceIp, false),
            ],
            Some(h("alice")),
        ),
        // ... and not before.
        (
            vec![
                entry(header("x-none"), true),
                entry(HashPolicy::SourceIp, false),
            ],
            Some(h("10.0.0.1")),
        ),
    ];
    for (policies, want) in cases {
        let got = request_hash(&policies, &req, ip, 0);
        assert_eq!(
            got,
            HashOutcome {
                hash: want,
                set_cookie: None
            },
            "{policies:?}"
        );
    }
}

#[test]
fn generated_cookie() {
    let ip: IpAddr = "::1".parse().expect("literal");
    let policy = |ttl: u64, path: Option<&str>| {
        vec![entry(
            HashPolicy::Cookie {
                name: "lb".into(),
                ttl: Some(Duration::from_secs(ttl)),
                path: path.map(str::to_owned),
            },
            true,
        )]
    };
    let out = request_hash(&policy(3600, Some("/app")), &Req::new("/"), ip, 7);
    let cookie = String::from_utf8(out.set_cookie.expect("generated")).expect("utf8");
    let value = cookie
        .strip_prefix("lb=\"")
        .and_then(|c| c.split('"').next())
        .expect("quoted value");
    assert_eq!(value.len(), 16);
    assert_eq!(
        cookie,
        format!("lb=\"{value}\"; Max-Age=3600; Path=/app; HttpOnly")
    );
    assert_eq!(out.hash, Some(xxh64(value.as_bytes(), 0)));
    // The client sends it back: same hash, no new cookie.
    let back = request_hash(
        &policy(3600, Some("/app")),
        &Req::new("/").header("cookie", &format!("lb={value}")),
        ip,
        99,
    );
    assert_eq!(
        back,
        HashOutcome {
            hash: out.hash,
            set_cookie: None
        }
    );
    // A zero ttl makes a session cookie; another random, another value.
    let session = request_hash(&policy(0, None), &Req::new("/"), ip, 8);
    let s = String::from_utf8(session.set_cookie.expect("generated")).expect("utf8");
    assert!(
        s.ends_with("\"; HttpOnly") && !s.contains("Max-Age") && !s.contains(value),
        "{s}"
    );
}
