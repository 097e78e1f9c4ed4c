// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn field_names_are_classified_case_insensitively() {
    let known = [
        (&b"te"[..], Field::Te),
        (b"host", Field::Host),
        (b"expect", Field::Expect),
        (b"upgrade", Field::Upgrade),
        (b"trailer", Field::Trailer),
        (b"connection", Field::Connection),
        (b"keep-alive", Field::KeepAlive),
        (b"x-request-id", Field::XRequestId),
        (b"content-length", Field::ContentLength),
        (b"x-forwarded-for", Field::XForwardedFor),
        (b"proxy-connection", Field::ProxyConnection),
        (b"transfer-encoding", Field::TransferEncoding),
        (b"x-forwarded-proto", Field::XForwardedProto),
    ];
    assert_eq!(known.len(), KNOWN_NAMES.len());
    for (name, field) in known {
        assert_eq!(Field::of(name), field);
        assert_eq!(Field::of(&name.to_ascii_uppercase()), field);
        let mut mixed = name.to_vec();
        mixed[0] = mixed[0].to_ascii_uppercase();
        assert_eq!(Field::of(&mixed), field);
        // One byte off, at the end: same length, same first byte.
        let mut near = name.to_vec();
        *near.last_mut().unwrap() ^= 0x01;
        assert_eq!(
            Field::of(&near),
            Field::Other,
            "{:?}",
            String::from_utf8_lossy(&near)
        );
    }
    for other in [
        &b""[..],
        b"t",
        b"accept",
        b"cookie",
        b"user-agent",
        b"hosts",
        b"x-forwarded-host",
        &[b'x'; 40],
    ] {
        assert_eq!(Field::of(other), Field::Other);
    }
}

#[test]
fn decimal_is_digits_only() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b"007"), Some(7));
    assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
    for bad in [
        &b""[..],
        b"18446744073709551616",
        b"+1",
        b"-1",
        b"1 ",
        b" 1",
        b"1,1",
        b"1e3",
        b"\xd9\xa1",
    ] {
        assert_eq!(
            parse_decimal(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn lists_and_whitespace() {
    let items: Vec<&[u8]> = list_items(b" a ,, b\t,c,  ,").collect();
    assert_eq!(items, [&b"a"[..], b"b", b"c"]);
    assert_eq!(list_items(b"").count(), 0);
    assert_eq!(trim_ows(b" \t a b \t"), b"a b");
    assert_eq!(trim_ows(b"   "), b"");
}

#[test]
fn framing_across_fields() {
    let mut framing = Framing::default();
    assert_eq!(framing.transfer_encoding(b""), Ok(()));
    assert_eq!(framing.transfer_coding, TransferCoding::Empty);
    assert_eq!(framing.transfer_encoding(b"chunked"), Ok(()));
    assert_eq!(framing.transfer_coding, TransferCoding::Chunked);
    assert_eq!(framing.transfer_encoding(b""), Ok(()));
    assert_eq!(
        framing.transfer_encoding(b"chunked"),
        Err(FramingError::TransferEncoding)
    );

    let mut framing = Framing::default();
    framing.connection(b"Keep-Alive, X-Foo");
    framing.connection(b"UPGRADE");
    assert!(framing.keep_alive && framing.upgrade && framing.nominates && !framing.close);
    assert!(framing.persistent(false));
    framing.connection(b"close");
    assert!(!framing.persistent(true));
}

#[test]
fn authority_bytes() {
    for ok in [
        &b"a.example"[..],
        b"a.example:80",
        b"[2001:db8::1]:443",
        b"a-b_c~d",
        b"%41",
        b"",
    ] {
        assert!(is_valid_authority(ok));
    }
    for bad in [
        &b"a b"[..],
        b"a/b",
        b"a@b",
        b"a?b",
        b"a#b",
        b"a\\b",
        b"\"a\"",
        b"a\x00",
        b"\xc3\xa9",
        b"<a>",
    ] {
        assert!(
            !is_valid_authority(bad),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
