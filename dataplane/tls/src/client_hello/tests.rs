use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;

/// The first flight of a rustls client: its ClientHello record(s), as it would write them
/// to a socket.
fn rustls_hello(server: &str, alpn: &[&[u8]], tls12_only: bool) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(server.to_string()).unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

fn hello(input: &[u8]) -> ClientHello {
    match peek(input) {
        Peek::Hello(h) => h,
        other => panic!("expected a hello, got {other:?}"),
    }
}

#[test]
fn real_hellos_from_rustls() {
    struct Case {
        server: &'static str,
        alpn: &'static [&'static [u8]],
        tls12_only: bool,
        sni: Option<&'static str>,
        versions: &'static [u16],
    }
    let cases = [
        Case {
            server: "example.com",
            alpn: &[],
            tls12_only: false,
            sni: Some("example.com"),
            versions: &[TLS13, TLS12],
        },
        Case {
            server: "api.example.com",
            alpn: &[b"h2", b"http/1.1"],
            tls12_only: false,
            sni: Some("api.example.com"),
            versions: &[TLS13, TLS12],
        },
        Case {
            server: "Mixed.Case.Example",
            alpn: &[b"istio-peer-exchange", b"istio"],
            tls12_only: false,
            sni: Some("mixed.case.example"),
            versions: &[TLS13, TLS12],
        },
        Case {
            server: "old.example",
            alpn: &[b"http/1.1"],
            tls12_only: true,
            sni: Some("old.example"),
            versions: &[TLS12],
        },
        // An IP address is never sent as SNI.
        Case {
            server: "10.1.2.3",
            alpn: &[b"h2"],
            tls12_only: false,
            sni: None,
            versions: &[TLS13, TLS12],
        },
        Case {
            server: "::1",
            alpn: &[],
            tls12_only: true,
            sni: None,
            versions: &[TLS12],
        },
    ];
    for case in cases {
        let bytes = rustls_hello(case.server, case.alpn, case.tls12_only);
        let h = hello(&bytes);
        assert_eq!(h.sni.as_deref(), case.sni, "{}", case.server);
        assert_eq!(
            h.alpn,
            case.alpn.iter().map(|p| p.to_vec()).collect::<Vec<_>>()
        );
        assert_eq!(h.versions, case.versions, "{}", case.server);
        assert_eq!(h.offers_tls13(), !case.tls12_only);
        assert!(!h.cipher_suites.is_empty());
        assert_eq!(h.len, bytes.len(), "rustls writes the hello alone");
        // Every strict prefix needs more; bytes after the hello change nothing.
        for cut in 0..bytes.len() {
            assert_eq!(
                peek(&bytes[..cut]),
                Peek::NeedMore,
                "{} cut at {cut}",
                case.server
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"\x17\x03\x03\x00\x01x");
        assert_eq!(hello(&longer), h);
    }
}

#[test]
fn offers_alpn() {
    let h = hello(&rustls_hello("a.example", &[b"h2", b"http/1.1"], false));
    assert!(h.offers_alpn(b"h2"));
    assert!(h.offers_alpn(b"http/1.1"));
    assert!(!h.offers_alpn(b"h3"));
}

/// The handshake message inside a record-framed hello.
fn message_of(records: &[u8]) -> Vec<u8> {
    records[RECORD_HEADER_BYTES..].to_vec()
}

/// `message` framed as handshake records, split at `cuts` (offsets into the message).
fn framed(message: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(message.len());
    for w in bounds.windows(2) {
        let part = &message[w[0]..w[1]];
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn hello_split_over_two_records() {
    let one = rustls_hello("split.example", &[b"h2"], false);
    let expected = hello(&one);
    let message = message_of(&one);
    for cut in [1, 2, 3, 4, 5, 40, message.len() / 2, message.len() - 1] {
        let two = framed(&message, &[cut]);
        let h = hello(&two);
        assert_eq!(h.len, two.len(), "cut {cut}");
        assert_eq!(
            ClientHello {
                len: one.len(),
                ..h
            },
            expected,
            "cut {cut}"
        );
        for prefix in 0..two.len() {
            assert_eq!(
                peek(&two[..prefix]),
                Peek::NeedMore,
                "cut {cut} prefix {prefix}"
            );
        }
    }
}

#[test]
fn three_records_are_refused() {
    let message = message_of(&rustls_hello("three.example", &[], false));
    let three = framed(&message, &[10, 20]);
    assert_eq!(peek(&three), Peek::Invalid(HelloError::TooManyRecords));
    // Refused as soon as the second record is complete, before the third arrives.
    assert_eq!(
        peek(&three[..2 * RECORD_HEADER_BYTES + 20]),
        Peek::Invalid(HelloError::TooManyRecords)
    );
}

/// A ClientHello message with the given extensions (type, data), framed in one record.
fn hand_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend_from_slice(&kind.to_be_bytes());
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend_from_slice(data);
    }
    if !extensions.is_empty() {
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
    }
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    framed(&message, &[])
}

fn sni_ext(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&entry);
    (0, data)
}

#[test]
fn hand_made_hellos() {
    // No extensions at all (a TLS 1.2 form): the legacy version is the one offered.
    let h = hello(&hand_hello(&[]));
    assert_eq!((h.sni, h.alpn, h.versions), (None, vec![], vec![TLS12]));
    // GREASE versions are left out; unknown extensions are skipped.
    let h = hello(&hand_hello(&[
        (0x0a0a, vec![]),
        (43, vec![6, 0x1a, 0x1a, 3, 4, 3, 3]),
        sni_ext(b"x.example"),
    ]));
    assert_eq!(h.versions, vec![TLS13, TLS12]);
    assert_eq!(h.sni.as_deref(), Some("x.example"));
}

#[test]
fn not_tls() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x80\x2e\x01\x00\x02", // SSLv2-framed hello
        b"\x17\x03\x03\x00\x10", // application data first
        b"\x16\x02",             // not version 3
        b"\x16\x03\x05",         // no such minor version
        b"\x00",
    ];
    for input in cases {
        assert_eq!(peek(input), Peek::NotTls, "{input:?}");
    }
}

#[test]
fn need_more() {
    for input in [
        &b""[..],
        b"\x16",
        b"\x16\x03",
        b"\x16\x03\x01",
        b"\x16\x03\x01\x02",
        b"\x16\x03\x01\x02\x00",
        b"\x16\x03\x01\x02\x00\x01\x00",
    ] {
        assert_eq!(peek(input), Peek::NeedMore, "{input:?}");
    }
}

#[test]
fn hostile_inputs() {
    let real = rustls_hello("h.example", &[b"h2"], false);
    let message = message_of(&real);
    let mut long_message = vec![1, 0xff, 0xff, 0xff];
    long_message.extend_from_slice(&[0; 100]);
    let mut not_hello = message.clone();
    not_hello[0] = 2;
    let mut second_not_handshake = framed(&message, &[10]);
    second_not_handshake[RECORD_HEADER_BYTES + 10] = 23;
    let mut second_bad_version = framed(&message, &[10]);
    second_bad_version[RECORD_HEADER_BYTES + 10 + 1] = 2;
    let mut extension_overrun = message.clone();
    // Claim the body is one byte shorter than it is: the extensions block overruns it.
    let n = extension_overrun.len() - 4 - 1;
    extension_overrun[1..4].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
    let bad_sni_chars = hand_hello(&[sni_ext(b"evil\0name")]);
    let empty_sni = hand_hello(&[sni_ext(b"")]);
    let long_sni = hand_hello(&[sni_ext(&[b'a'; 254])]);
    let dup = hand_hello(&[
        sni_ext(b"a.example"),
        (16, vec![0, 3, 2, b'h', b'2']),
        sni_ext(b"b.example"),
    ]);
    let empty_alpn_name = hand_hello(&[(16, vec![0, 1, 0])]);
    let odd_versions = hand_hello(&[(43, vec![3, 3, 4, 3])]);
    let sni_truncated = hand_hello(&[(0, vec![0, 3, 0, 0, 9])]);
    let cases: Vec<(&str, Vec<u8>, HelloError)> = vec![
        (
            "empty record",
            b"\x16\x03\x01\x00\x00".to_vec(),
            HelloError::EmptyRecord,
        ),
        (
            "record too large",
            b"\x16\x03\x01\x40\x01".to_vec(),
            HelloError::RecordTooLarge { len: 0x4001 },
        ),
        (
            "not a hello",
            framed(&not_hello, &[]),
            HelloError::NotClientHello(2),
        ),
        (
            "hello too large",
            framed(&long_message, &[]),
            HelloError::TooLarge { len: 4 + 0xff_ffff },
        ),
        (
            "second record not handshake",
            second_not_handshake,
            HelloError::UnexpectedRecord(23),
        ),
        (
            "second record bad version",
            second_bad_version,
            HelloError::RecordVersion { major: 2, minor: 1 },
        ),
        (
            "extensions overrun",
            framed(&extension_overrun, &[]),
            HelloError::Malformed("extensions"),
        ),
        ("bad sni bytes", bad_sni_chars, HelloError::BadServerName),
        ("empty sni", empty_sni, HelloError::BadServerName),
        ("sni too long", long_sni, HelloError::BadServerName),
        (
            "duplicate extension",
            dup,
            HelloError::DuplicateExtension(0),
        ),
        (
            "empty alpn name",
            empty_alpn_name,
            HelloError::Malformed("empty ALPN protocol name"),
        ),
        (
            "odd supported_versions",
            odd_versions,
            HelloError::Malformed("supported_versions length"),
        ),
        (
            "truncated sni list",
            sni_truncated,
            HelloError::Malformed("server_name"),
        ),
    ];
    for (name, input, error) in cases {
        assert_eq!(peek(&input), Peek::Invalid(error), "{name}");
    }
}

#[test]
fn hello_exactly_at_the_size_limit() {
    // A padding extension brings the message to exactly MAX_HELLO_BYTES, over two records.
    let base = message_of(&hand_hello(&[(21, vec![])]));
    let pad = MAX_HELLO_BYTES - base.len();
    let message = message_of(&hand_hello(&[(21, vec![0; pad])]));
    assert_eq!(message.len(), MAX_HELLO_BYTES);
    let input = framed(&message, &[MAX_RECORD_PAYLOAD_BYTES - 1]);
    assert_eq!(input.len(), MAX_PEEK_BYTES);
    assert_eq!(hello(&input).len, MAX_PEEK_BYTES);
    // One byte more is refused.
    let mut over = message.clone();
    over.push(0);
    let total = over.len() - 4;
    over[1..4].copy_from_slice(&(total as u32).to_be_bytes()[1..]);
    assert_eq!(
        peek(&framed(&over, &[100])),
        Peek::Invalid(HelloError::TooLarge {
            len: MAX_HELLO_BYTES + 1
        })
    );
}

/// A small deterministic generator (xorshift64), so the mutation test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_hellos_never_panic_and_answers_are_final() {
    let seeds = [
        rustls_hello("m.example", &[b"h2", b"http/1.1"], false),
        framed(&message_of(&rustls_hello("n.example", &[], true)), &[30]),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..20_000 {
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(3) {
                0 if !input.is_empty() => {
                    let i = rng.below(input.len());
                    input[i] = rng.next() as u8;
                }
                1 => input.truncate(rng.below(input.len() + 1)),
                _ => {
                    let i = rng.below(input.len() + 1);
                    input.insert(i, rng.next() as u8);
                }
            }
        }
        let whole = peek(&input);
        let cut = rng.below(input.len() + 1);
        let prefix = peek(&input[..cut]);
        if prefix != Peek::NeedMore {
            assert_eq!(prefix, whole, "{input:?} cut at {cut}");
        }
        if let Peek::Hello(h) = whole {
            assert!(h.len <= input.len());
            assert_eq!(peek(&input[..h.len]), Peek::Hello(h));
        }
    }
}
