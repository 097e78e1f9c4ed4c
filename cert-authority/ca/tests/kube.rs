//! Kubernetes service-account tokens: spar-ca asks the (fake) API server with a TokenReview
//! for the `istio-ca` audience, and signs only the account it names. The fake speaks the
//! real TokenReview JSON (spar-tests' `fake_kube::token_review`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use spar_ca::{Authenticator, Reason, TokenReviewer};
use spar_tests::fake_kube::FakeKube;
use spar_tests::fake_kube::token_review::API_AUDIENCE;
use tonic::Code;

const SLEEP_TOKEN: &str = "kube-token-of-default-sleep";
const API_ONLY_TOKEN: &str = "kube-token-for-the-api-server-only";

async fn served_with(fake: &FakeKube) -> Served {
    let reviewer = TokenReviewer::connect(Some(&fake.url())).await.unwrap();
    Served::start(fresh_ca(), Authenticator::with_kube(reviewer)).await
}

fn fake() -> FakeKube {
    let fake = FakeKube::start();
    fake.add_token(SLEEP_TOKEN, "default", "sleep", &["istio-ca", API_AUDIENCE]);
    fake.add_token(API_ONLY_TOKEN, "default", "sleep", &[API_AUDIENCE]);
    fake
}

fn refused(served: &Served, reason: Reason) -> u64 {
    served.ca.stats().refused(reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_gets_its_identity_and_no_other() {
    let fake = fake();
    let served = served_with(&fake).await;
    let mut client = served.client().await;
    let chain = create(&mut client, &csr(SLEEP_ID).0, 0, Some(SLEEP_TOKEN))
        .await
        .unwrap();
    verify_as_client_cert(&chain, &served.ca.trust_bundle());
    assert_eq!(fake.token_reviews(), 1);
    let leaf = parse(der(&chain[0]).remove(0));
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![x509_parser::extensions::GeneralName::URI(SLEEP_ID)]
    );

    // The same token, a CSR for another account.
    let other = "spiffe://cluster.local/ns/default/sa/productpage";
    let status = create(&mut client, &csr(other).0, 0, Some(SLEEP_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(refused(&served, Reason::IdentityMismatch), 1);
    assert_eq!(served.ca.stats().issued(), 1);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_kubernetes_does_not_vouch_for_are_unauthenticated() {
    let fake = fake();
    let served = served_with(&fake).await;
    let mut client = served.client().await;
    // A token the API server does not know; one for the API server's audience only.
    for token in ["not-a-kube-token", API_ONLY_TOKEN] {
        let status = create(&mut client, &csr(SLEEP_ID).0, 0, Some(token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token}: {status:?}");
        assert!(status.message().contains("not authenticated by Kubernetes"));
    }
    assert_eq!(refused(&served, Reason::InvalidToken), 2);
    assert_eq!(fake.token_reviews(), 2);

    // An authenticator that ignores audiences vouches for the token, but not for istio-ca.
    fake.set_audience_aware(false);
    let status = create(&mut client, &csr(SLEEP_ID).0, 0, Some(API_ONLY_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(refused(&served, Reason::WrongAudience), 1);
    assert_eq!(served.ca.stats().issued(), 0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spar_ca_tokens_still_work_and_forgeries_never_reach_kubernetes() {
    let fake = fake();
    let served = served_with(&fake).await;
    let mut client = served.client().await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    // A forgery naming the CA's key id is judged by that key alone.
    let stranger = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let header = format!(
        r#"{{"alg":"ES256","kid":"{}"}}"#,
        served.ca.token_key().key_id()
    );
    let now = unix_now();
    let claims = format!(
        r#"{{"iss":"spar-ca","sub":"system:serviceaccount:default:sleep","aud":"istio-ca","iat":{now},"exp":{}}}"#,
        now + 600
    );
    let forged = jws(&stranger, &header, &claims);
    let status = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(fake.token_reviews(), 0, "no TokenReview for either");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_unavailable_not_a_grant() {
    let fake = fake();
    let served = served_with(&fake).await;
    let mut client = served.client().await;
    fake.set_available(false);
    let status = create(&mut client, &csr(SLEEP_ID).0, 0, Some(SLEEP_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(refused(&served, Reason::AuthUnavailable), 1);
    // Back: the caller's retry succeeds.
    fake.set_available(true);
    create(&mut client, &csr(SLEEP_ID).0, 0, Some(SLEEP_TOKEN))
        .await
        .unwrap();
    served.stop().await;
}
