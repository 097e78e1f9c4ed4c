//! Requests that must get no certificate, sent over gRPC to a served CA: each is refused
//! with the right gRPC code and counted under its reason, and nothing is issued. Every
//! attack has a control beside it (the same request, made honest, passes), so a test that
//! passes because the request was broken in some other way would show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, IsCa, KeyPair, SanType};
use spar_ca::{Authenticator, Reason};
use tonic::Code;
use x509_parser::prelude::FromDer;

const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

/// A served CA, its token key (PEM) and a client.
struct Setup {
    served: Served,
    token_key: String,
    client: spar_ca::service::pb::istio_certificate_service_client::IstioCertificateServiceClient<
        tonic::transport::Channel,
    >,
}

impl Setup {
    async fn new() -> Setup {
        let (ca, dir) = fresh_ca_in();
        let token_key = std::fs::read_to_string(dir.join(spar_ca::TOKEN_KEY)).unwrap();
        let served = Served::start(ca, Authenticator::local()).await;
        let client = served.client().await;
        Setup {
            served,
            token_key,
            client,
        }
    }

    fn token(&self) -> String {
        self.served
            .ca
            .mint_token(&sleep(), Duration::from_secs(600))
            .unwrap()
    }

    /// Sends the request, expects `code`, and checks that exactly one more refusal was
    /// counted, under `reason`, and nothing issued.
    async fn refused(&mut self, csr: &str, token: Option<&str>, code: Code, reason: Reason) {
        let stats = self.served.ca.stats();
        let before: Vec<u64> = Reason::ALL.iter().map(|r| stats.refused(*r)).collect();
        let issued = stats.issued();
        let status = create(&mut self.client, csr, 0, token).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().starts_with(reason.as_str()),
            "{}",
            status.message()
        );
        let stats = self.served.ca.stats();
        for (i, r) in Reason::ALL.iter().enumerate() {
            let want = before[i] + u64::from(*r == reason);
            assert_eq!(stats.refused(*r), want, "{r:?} after {}", status.message());
        }
        assert_eq!(stats.issued(), issued);
    }

    async fn issued(&mut self, csr: &str, token: &str) {
        create(&mut self.client, csr, 0, Some(token)).await.unwrap();
    }

    /// A JSON claims set for `sub`, audience `aud` (JSON), expiring at `exp`.
    fn claims(sub: &str, aud: &str, iat: u64, exp: u64) -> String {
        format!(r#"{{"iss":"spar-ca","sub":"{sub}","aud":{aud},"iat":{iat},"exp":{exp}}}"#)
    }

    fn header(&self, alg: &str) -> String {
        format!(
            r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#,
            self.served.ca.token_key().key_id()
        )
    }
}

const SLEEP_SUB: &str = "system:serviceaccount:default:sleep";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_gets_only_its_own_identity() {
    let mut s = Setup::new().await;
    let token = s.token();
    s.issued(&csr(SLEEP_ID).0, &token).await;
    for other in [
        PRODUCTPAGE_ID,
        "spiffe://cluster.local/ns/kube-system/sa/sleep",
        "spiffe://other.domain/ns/default/sa/sleep",
        "spiffe://cluster.local/ns/istio-system/sa/istiod",
    ] {
        s.refused(
            &csr(other).0,
            Some(&token),
            Code::PermissionDenied,
            Reason::IdentityMismatch,
        )
        .await;
    }
    s.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_unauthenticated() {
    let mut s = Setup::new().await;
    let now = unix_now();
    let good_claims = Setup::claims(SLEEP_SUB, r#""istio-ca""#, now, now + 600);
    // Control: a JWS made by the helper with the CA's real key and honest claims passes.
    let honest = jws(&s.token_key, &s.header("ES256"), &good_claims);
    s.issued(&csr(SLEEP_ID).0, &honest).await;

    // Bad signature: another key signs, under the CA's key id.
    let stranger_key = KeyPair::generate().unwrap().serialize_pem();
    let forged = jws(&stranger_key, &s.header("ES256"), &good_claims);
    // alg none, unsigned; and the CA's real signature under an alg that is not ES256.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(s.header("none")),
        b64.encode(&good_claims)
    );
    let hs256 = jws(&s.token_key, &s.header("HS256"), &good_claims);
    // Tampered payload: a real token's claims swapped for an admin's, signature kept.
    let real = s.token();
    let admin_claims = Setup::claims(
        "system:serviceaccount:kube-system:admin",
        r#""istio-ca""#,
        now,
        now + 600,
    );
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    parts[1] = b64.encode(&admin_claims);
    let tampered = parts.join(".");
    // A token minted by another spar-ca.
    let other_ca = fresh_ca()
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    for (what, token) in [
        ("bad signature", forged),
        ("alg none", none),
        ("alg HS256", hs256),
        ("tampered payload", tampered),
        ("another CA's token", other_ca),
        ("not a JWT", "hello".to_owned()),
    ] {
        eprintln!("{what}");
        s.refused(
            &csr(SLEEP_ID).0,
            Some(&token),
            Code::Unauthenticated,
            Reason::InvalidToken,
        )
        .await;
    }
    // The tampered token's claims, properly signed, would have been admin: it was the
    // signature that stopped it.
    let admin = jws(&s.token_key, &s.header("ES256"), &admin_claims);
    let admin_id = "spiffe://cluster.local/ns/kube-system/sa/admin";
    s.issued(&csr(admin_id).0, &admin).await;
    s.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_future_and_misdirected_tokens_are_unauthenticated() {
    let mut s = Setup::new().await;
    let now = unix_now();
    let ca = s.served.ca.clone();
    let key = ca.token_key();
    let expired = key.mint(&sleep(), now - 7200, 3600).unwrap();
    let just_expired = key.mint(&sleep(), now - 600, 599).unwrap();
    let future = key.mint(&sleep(), now + 3600, 7200).unwrap();
    let api_audience = jws(
        &s.token_key,
        &s.header("ES256"),
        &Setup::claims(SLEEP_SUB, r#"["api","kubernetes"]"#, now, now + 600),
    );
    let cases = [
        (expired, Reason::ExpiredToken),
        (just_expired, Reason::ExpiredToken),
        (future, Reason::InvalidToken),
        (api_audience, Reason::WrongAudience),
    ];
    for (token, reason) in cases {
        s.refused(
            &csr(SLEEP_ID).0,
            Some(&token),
            Code::Unauthenticated,
            reason,
        )
        .await;
    }
    // Control: the same key, now.
    let fresh = key.mint(&sleep(), now, 600).unwrap();
    s.issued(&csr(SLEEP_ID).0, &fresh).await;
    s.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_is_unauthenticated_before_the_csr_is_read() {
    let mut s = Setup::new().await;
    s.refused(
        &csr(SLEEP_ID).0,
        None,
        Code::Unauthenticated,
        Reason::MissingToken,
    )
    .await;
    // Another scheme, or an empty bearer.
    for value in [format!("Basic {}", s.token()), "Bearer ".to_owned()] {
        let mut request = tonic::Request::new(spar_ca::service::pb::IstioCertificateRequest {
            csr: csr(SLEEP_ID).0,
            validity_duration: 0,
            metadata: None,
        });
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let status = s.client.create_certificate(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{value}");
    }
    // A bad token with a bad CSR: the token is judged first (nothing about the CSR leaks to
    // an unauthenticated caller).
    s.refused(
        "garbage",
        Some("forged"),
        Code::Unauthenticated,
        Reason::InvalidToken,
    )
    .await;
    s.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrs_asking_for_more_are_invalid() {
    let mut s = Setup::new().await;
    let token = s.token();
    let ca_true =
        |c: BasicConstraints| move |p: &mut rcgen::CertificateParams| p.is_ca = IsCa::Ca(c);
    let cases = [
        (
            csr_with(
                vec![uri(SLEEP_ID)],
                ca_true(BasicConstraints::Unconstrained),
            )
            .0,
            Reason::CaRequested,
        ),
        (
            csr_with(
                vec![uri(SLEEP_ID)],
                ca_true(BasicConstraints::Constrained(0)),
            )
            .0,
            Reason::CaRequested,
        ),
        (
            csr_with(
                vec![
                    uri(SLEEP_ID),
                    SanType::DnsName("evil.example".try_into().unwrap()),
                ],
                |_| {},
            )
            .0,
            Reason::BadSan,
        ),
        (
            csr_with(
                vec![uri(SLEEP_ID), SanType::IpAddress([10, 0, 0, 1].into())],
                |_| {},
            )
            .0,
            Reason::BadSan,
        ),
        (
            csr_with(vec![uri(SLEEP_ID), uri(PRODUCTPAGE_ID)], |_| {}).0,
            Reason::BadSan,
        ),
        (
            csr_with(
                vec![SanType::DnsName("sleep.default.svc".try_into().unwrap())],
                |_| {},
            )
            .0,
            Reason::BadSan,
        ),
        (csr_with(vec![], |_| {}).0, Reason::BadSan),
        (
            csr_with(
                vec![uri("spiffe://cluster.local/ns/default/sa/sleep/x")],
                |_| {},
            )
            .0,
            Reason::BadSan,
        ),
        ("not a csr".to_owned(), Reason::MalformedCsr),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
                .to_owned(),
            Reason::MalformedCsr,
        ),
        (
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                "A".repeat(20_000)
            ),
            Reason::MalformedCsr,
        ),
    ];
    for (pem, reason) in cases {
        s.refused(&pem, Some(&token), Code::InvalidArgument, reason)
            .await;
    }
    s.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_signed_by_another_key_than_its_own_is_invalid() {
    let mut s = Setup::new().await;
    let token = s.token();
    let (pem, key) = csr(SLEEP_ID);
    let thief = KeyPair::generate().unwrap();
    // Control: re-signing with the CSR's own key gives a CSR that passes.
    s.issued(&resign(&pem, &key), &token).await;
    s.refused(
        &resign(&pem, &thief),
        Some(&token),
        Code::InvalidArgument,
        Reason::MalformedCsr,
    )
    .await;
    s.served.stop().await;
}

/// The CSR `pem` with its signature replaced by `key`'s signature over the same
/// certificationRequestInfo (whose public key stays the original one).
fn resign(pem: &str, key: &KeyPair) -> String {
    let der = spar_ca::csr::csr_der_from_pem(pem).unwrap();
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    let info = parsed.certification_request_info.raw;
    // The AlgorithmIdentifier follows the info: SEQUENCE, short length (ECDSA's is 12).
    let offset = info.as_ptr() as usize - der.as_ptr() as usize;
    let alg_start = offset + info.len();
    let alg = &der[alg_start..alg_start + 2 + usize::from(der[alg_start + 1])];
    let signature = rcgen::SigningKey::sign(key, info).unwrap();
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut body = info.to_vec();
    body.extend_from_slice(alg);
    body.extend(tlv(0x03, &bits));
    let out = tlv(0x30, &body);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out);
    format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n")
}

/// A DER TLV (definite length, short or long form).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}
