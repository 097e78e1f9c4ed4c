use super::*;

fn key() -> TokenKey {
    TokenKey::from_pkcs8(&TokenKey::generate_pkcs8().unwrap()).unwrap()
}

fn sleep() -> ServiceAccount {
    ServiceAccount::new("default", "sleep").unwrap()
}

const NOW: u64 = 1_800_000_000;

/// A token with arbitrary header and claims JSON, signed by `key`.
fn raw(key: &TokenKey, header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key
        .pair
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!("{signing_input}.{}", B64.encode(sig.as_ref()))
}

fn header(key: &TokenKey) -> String {
    format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.key_id())
}

#[test]
fn minted_tokens_verify_until_they_expire() {
    let k = key();
    let t = k.mint(&sleep(), NOW, 3600).unwrap();
    assert!(k.claims_to_be_ours(&t));
    assert_eq!(k.verify(&t, NOW).unwrap(), sleep());
    assert_eq!(k.verify(&t, NOW + 3599).unwrap(), sleep());
    assert_eq!(k.verify(&t, NOW + 3600), Err(TokenError::Expired));
    // Issued "in the future" within the allowed skew, not beyond.
    assert_eq!(k.verify(&t, NOW - CLOCK_SKEW_SECS).unwrap(), sleep());
    assert_eq!(
        k.verify(&t, NOW - CLOCK_SKEW_SECS - 1),
        Err(TokenError::NotYetValid)
    );
    // A reloaded key (same PKCS#8) verifies the same tokens.
    let der = TokenKey::generate_pkcs8().unwrap();
    let (a, b) = (
        TokenKey::from_pkcs8(&der).unwrap(),
        TokenKey::from_pkcs8(&der).unwrap(),
    );
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(
        b.verify(&a.mint(&sleep(), NOW, 60).unwrap(), NOW).unwrap(),
        sleep()
    );
}

#[test]
fn forged_and_tampered_tokens_are_refused() {
    let (k, other) = (key(), key());
    // Another key's token: another key id.
    let foreign = other.mint(&sleep(), NOW, 3600).unwrap();
    assert!(!k.claims_to_be_ours(&foreign));
    assert_eq!(k.verify(&foreign, NOW), Err(TokenError::NotOurs));
    // Another key's signature under this key's id.
    let claims = format!(
        r#"{{"iss":"spar-ca","sub":"system:serviceaccount:default:sleep","aud":"istio-ca","iat":{NOW},"exp":{}}}"#,
        NOW + 3600
    );
    let forged = raw(&other, &header(&k), &claims);
    assert!(k.claims_to_be_ours(&forged));
    assert_eq!(k.verify(&forged, NOW), Err(TokenError::BadSignature));
    // The same claims signed by the right key pass: the forgery failed on its signature.
    assert_eq!(
        k.verify(&raw(&k, &header(&k), &claims), NOW).unwrap(),
        sleep()
    );
    // A real token with its claims swapped for another account's.
    let real = k.mint(&sleep(), NOW, 3600).unwrap();
    let admin = claims.replace("default:sleep", "kube-system:admin");
    let mut parts: Vec<&str> = real.split('.').collect();
    let swapped = B64.encode(&admin);
    parts[1] = &swapped;
    assert_eq!(
        k.verify(&parts.join("."), NOW),
        Err(TokenError::BadSignature)
    );
    // alg none / HS256, with or without a signature.
    for alg in ["none", "HS256", "ES384"] {
        let h = format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, k.key_id());
        let t = raw(&k, &h, &claims);
        assert_eq!(
            k.verify(&t, NOW),
            Err(TokenError::Malformed("alg is not ES256"))
        );
        let unsigned = format!("{}.{}.", B64.encode(&h), B64.encode(&claims));
        assert!(k.verify(&unsigned, NOW).is_err());
    }
}

#[test]
fn claims_are_checked() {
    let k = key();
    let h = header(&k);
    let claims = |iss: &str, sub: &str, aud: &str| {
        format!(
            r#"{{"iss":"{iss}","sub":"{sub}","aud":{aud},"iat":{NOW},"exp":{}}}"#,
            NOW + 60
        )
    };
    let sa = "system:serviceaccount:default:sleep";
    let cases = [
        (claims("spar-ca", sa, r#"["x","istio-ca"]"#), Ok(sleep())),
        (
            claims("spar-ca", sa, r#""api""#),
            Err(TokenError::WrongAudience),
        ),
        (
            claims("spar-ca", sa, r#"["api"]"#),
            Err(TokenError::WrongAudience),
        ),
        (
            claims("kubernetes", sa, r#""istio-ca""#),
            Err(TokenError::WrongIssuer),
        ),
        (
            claims("spar-ca", "system:node:x", r#""istio-ca""#),
            Err(TokenError::BadSubject(
                "username \"system:node:x\" is not system:serviceaccount:<namespace>:<name>".into(),
            )),
        ),
        (
            r#"{"iss":"spar-ca"}"#.to_owned(),
            Err(TokenError::Malformed("part is not the expected JSON")),
        ),
    ];
    for (c, want) in cases {
        assert_eq!(k.verify(&raw(&k, &h, &c), NOW), want, "{c}");
    }
}

#[test]
fn garbage_is_malformed() {
    let k = key();
    for t in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "eyJ.eyJ.eyJ",
        &"a".repeat(MAX_TOKEN_BYTES + 1),
    ] {
        assert!(
            matches!(k.verify(t, NOW), Err(TokenError::Malformed(_))),
            "{t:?}"
        );
    }
}
