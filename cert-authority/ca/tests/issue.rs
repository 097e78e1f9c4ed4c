//! spar-ca issuing: a tonic client over TLS (trusting the CA's root) sends CSRs made by
//! rcgen with a token the CA minted, and checks every field of what comes back. Also the
//! CA's files: a restart keeps the root, a plug-in CA's chain comes back in order, several
//! roots are trusted at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use spar_ca::{Authenticator, Ca, Policy};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::public_key::PublicKey;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_leaf_and_root_for_the_token_identity() {
    let served = Served::start(fresh_ca(), Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let (request, key) = csr(SLEEP_ID);
    let mut client = served.client().await;
    let chain = create(&mut client, &request, 0, Some(&token))
        .await
        .unwrap();

    assert_eq!(chain.len(), 2, "leaf and root");
    assert_eq!(chain[1], served.ca.roots()[0]);
    let leaf = parse(der(&chain[0]).remove(0));
    let root = parse(der(&chain[1]).remove(0));
    assert_eq!(leaf.issuer(), root.subject());
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    assert!(leaf.subject().iter().next().is_none(), "empty subject");
    // Exactly one name, the SPIFFE URI, critical (the subject is empty).
    let san = leaf
        .extensions()
        .iter()
        .find(|e| {
            matches!(
                e.parsed_extension(),
                ParsedExtension::SubjectAlternativeName(_)
            )
        })
        .unwrap();
    assert!(san.critical);
    let ParsedExtension::SubjectAlternativeName(names) = san.parsed_extension() else {
        unreachable!()
    };
    assert_eq!(names.general_names, vec![GeneralName::URI(SLEEP_ID)]);
    // CA:false, digitalSignature + keyEncipherment, serverAuth + clientAuth.
    let bc = leaf.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.any && eku.other.is_empty());
    // 24 h by default, backdated by the clock-skew allowance.
    assert_eq!(
        lifetime_secs(&leaf),
        DAY + spar_ca::CLOCK_SKEW.as_secs() as i64
    );
    // Backdated, and not by more than the allowance.
    let now = unix_now() as i64;
    let not_before = leaf.validity().not_before.timestamp();
    let skew = spar_ca::CLOCK_SKEW.as_secs() as i64;
    assert!(
        (now - skew - 5..=now - skew + 1).contains(&not_before),
        "{not_before} vs {now}"
    );
    // A TLS peer trusting the root accepts it as a client and as a server certificate; one
    // trusting another root accepts neither.
    verify_as_client_cert(&chain, &served.ca.trust_bundle());
    verify_as_server_cert(&chain, &served.ca.trust_bundle()).unwrap();
    let stranger = fresh_ca().trust_bundle();
    assert!(verify_as_server_cert(&chain, &stranger).is_err());
    // Serials are random: another certificate for the same key has another one.
    let again = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    let serial = |pem: &str| parse(der(pem).remove(0)).raw_serial().to_vec();
    assert_ne!(serial(&chain[0]), serial(&again[0]));
    assert_eq!(serial(&chain[0]).len(), 16);
    assert_eq!(served.ca.stats().issued(), 2);
    assert!(
        spar_ca::Reason::ALL
            .iter()
            .all(|r| served.ca.stats().refused(*r) == 0)
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ttl_is_honoured_up_to_the_maximum() {
    let served = Served::start(fresh_ca(), Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let mut client = served.client().await;
    let skew = spar_ca::CLOCK_SKEW.as_secs() as i64;
    for (asked, want) in [
        (HOUR, HOUR),
        (7 * DAY, 7 * DAY),
        (-1, DAY),
        (90 * DAY, 90 * DAY),
        (200 * DAY, 90 * DAY),
        (i64::MAX, 90 * DAY),
    ] {
        let chain = create(&mut client, &csr(SLEEP_ID).0, asked, Some(&token))
            .await
            .unwrap();
        let leaf = parse(der(&chain[0]).remove(0));
        assert_eq!(lifetime_secs(&leaf), want + skew, "asked {asked} s");
    }
    served.stop().await;

    // A lower maximum from the policy.
    let ca = fresh_ca().with_policy(Policy {
        max_ttl: Duration::from_secs(2 * 3600),
        ..Policy::default()
    });
    let served = Served::start(ca, Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let mut client = served.client().await;
    let chain = create(&mut client, &csr(SLEEP_ID).0, DAY, Some(&token))
        .await
        .unwrap();
    assert_eq!(
        lifetime_secs(&parse(der(&chain[0]).remove(0))),
        2 * HOUR + skew
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_domain_comes_from_the_policy() {
    let ca = fresh_ca().with_policy(Policy {
        trust_domain: "mesh.example".into(),
        ..Policy::default()
    });
    let served = Served::start(ca, Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let mut client = served.client().await;
    let id = "spiffe://mesh.example/ns/default/sa/sleep";
    let chain = create(&mut client, &csr(id).0, 0, Some(&token))
        .await
        .unwrap();
    assert_eq!(chain.len(), 2);
    // The default trust domain is another identity here.
    let refused = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_dir_keeps_the_root_and_the_token_key() {
    // A directory spar-ca creates itself (it leaves an existing one's mode alone).
    let dir = spar_tests::proc::scratch_dir("ca-restart").join("state");
    let first = Ca::load_or_create(&dir).unwrap();
    let bundle = first.trust_bundle();
    let token = first
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    for key in [spar_ca::ROOT_KEY, spar_ca::TOKEN_KEY] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o077, 0, "state dir not open to others");
    let served = Served::start(first, Authenticator::local()).await;
    let chain = create(
        &mut served.client().await,
        &csr(SLEEP_ID).0,
        0,
        Some(&token),
    )
    .await
    .unwrap();
    served.stop().await;

    let second = Ca::load_or_create(&dir).unwrap();
    assert_eq!(second.trust_bundle(), bundle);
    let served = Served::start(second, Authenticator::local()).await;
    // A client that kept the old root talks to the restarted CA, with the old token, and
    // the new leaf chains to the same root as the old one.
    let mut client = served.client_trusting(&bundle).await;
    let again = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    assert_eq!(again.last(), chain.last());
    verify_as_client_cert(&chain, &bundle);
    verify_as_client_cert(&again, &bundle);
    served.stop().await;

    // Another directory is another root: the old trust does not cover it.
    let other = fresh_ca();
    assert_ne!(other.trust_bundle(), bundle);
}

#[test]
fn a_damaged_dir_is_an_error_naming_the_file() {
    let dir = spar_tests::proc::scratch_dir("ca-damaged");
    drop(Ca::load_or_create(&dir).unwrap());
    std::fs::remove_file(dir.join(spar_ca::ROOT_KEY)).unwrap();
    let err = Ca::load_or_create(&dir).unwrap_err().to_string();
    assert!(err.contains(spar_ca::ROOT_KEY), "{err}");
    // A key that is not the certificate's.
    write(
        &dir,
        spar_ca::ROOT_KEY,
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let err = Ca::load_or_create(&dir).unwrap_err().to_string();
    assert!(err.contains("not the issuing certificate's key"), "{err}");
    write(&dir, spar_ca::ROOT_CERT, "not pem");
    assert!(Ca::load_or_create(&dir).is_err());
}

/// A CA certificate and key: self-signed when `issuer` is None.
fn ca_cert(
    name: &str,
    issuer: Option<&(rcgen::Certificate, KeyPair)>,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = match issuer {
        None => params.self_signed(&key).unwrap(),
        Some((cert, issuer_key)) => {
            let issuer = rcgen::Issuer::from_ca_cert_der(cert.der(), issuer_key).unwrap();
            params.signed_by(&key, &issuer).unwrap()
        }
    };
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_ca_chain_is_returned_in_order() {
    // root -> intermediate -> issuing CA, in Istio's cacerts layout.
    let root = ca_cert("plug-in root", None);
    let middle = ca_cert("plug-in intermediate", Some(&root));
    let issuing = ca_cert("plug-in issuing", Some(&middle));
    let plugin = spar_tests::proc::scratch_dir("cacerts");
    write(&plugin, spar_ca::PLUGIN_CA_CERT, &issuing.0.pem());
    write(&plugin, spar_ca::PLUGIN_CA_KEY, &issuing.1.serialize_pem());
    write(&plugin, spar_ca::PLUGIN_ROOT_CERT, &root.0.pem());
    let chain_file = format!("{}{}{}", issuing.0.pem(), middle.0.pem(), root.0.pem());
    write(&plugin, spar_ca::PLUGIN_CERT_CHAIN, &chain_file);
    let state = spar_tests::proc::scratch_dir("ca-state");
    let ca = Ca::load_plugin(&plugin, &state).unwrap();
    assert!(
        !state.join(spar_ca::ROOT_KEY).exists(),
        "no self-signed root beside a plug-in CA"
    );

    let served = Served::start(ca, Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let mut client = served.client_trusting(&root.0.pem()).await;
    let chain = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    let want = [issuing.0.pem(), middle.0.pem(), root.0.pem()];
    assert_eq!(chain.len(), 4, "leaf, issuing CA, intermediate, root");
    assert_eq!(&chain[1..], &want);
    let leaf = parse(der(&chain[0]).remove(0));
    let issuing_parsed = parse(der(&chain[1]).remove(0));
    assert_eq!(leaf.issuer(), issuing_parsed.subject());
    verify_as_client_cert(&chain, &root.0.pem());
    verify_as_server_cert(&chain, &root.0.pem()).unwrap();
    // Without the intermediates the leaf does not reach the root.
    let leaf_and_root = [chain[0].clone(), chain[3].clone()];
    assert!(verify_as_server_cert(&leaf_and_root, &root.0.pem()).is_err());
    served.stop().await;

    // Chains that do not reach a trusted root are refused at load, naming what is wrong:
    // cert-chain.pem without the intermediate, or out of order; root-cert.pem of another CA.
    let stranger = ca_cert("another root", None);
    let other_middle = ca_cert("another intermediate", Some(&root));
    let cases = [
        (
            format!("{}{}", issuing.0.pem(), root.0.pem()),
            root.0.pem(),
            "no trusted root signed",
        ),
        (
            format!(
                "{}{}{}{}",
                issuing.0.pem(),
                other_middle.0.pem(),
                middle.0.pem(),
                root.0.pem()
            ),
            root.0.pem(),
            "is not signed by",
        ),
        (
            chain_file.clone(),
            stranger.0.pem(),
            "no trusted root signed",
        ),
    ];
    for (chain, roots, want) in cases {
        write(&plugin, spar_ca::PLUGIN_CERT_CHAIN, &chain);
        write(&plugin, spar_ca::PLUGIN_ROOT_CERT, &roots);
        let err = Ca::load_plugin(&plugin, &state).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    write(&plugin, spar_ca::PLUGIN_ROOT_CERT, &root.0.pem());

    // Without cert-chain.pem, an issuing CA the root signed directly stands alone between
    // leaf and root; one under an intermediate is refused.
    std::fs::remove_file(plugin.join(spar_ca::PLUGIN_CERT_CHAIN)).unwrap();
    let err = Ca::load_plugin(&plugin, &state).unwrap_err().to_string();
    assert!(err.contains("no trusted root signed"), "{err}");
    let direct = ca_cert("plug-in issuing, direct", Some(&root));
    write(&plugin, spar_ca::PLUGIN_CA_CERT, &direct.0.pem());
    write(&plugin, spar_ca::PLUGIN_CA_KEY, &direct.1.serialize_pem());
    let ca = Ca::load_plugin(&plugin, &state).unwrap();
    let issued = ca
        .sign(
            &der_csr(SLEEP_ID),
            &spar_ca::SpiffeId::parse(SLEEP_ID).unwrap(),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(issued.chain[1..], [direct.0.pem(), root.0.pem()]);
    verify_as_server_cert(&issued.chain, &root.0.pem()).unwrap();

    // An expired issuing CA is refused at load.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
    params.not_after = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let issuer = rcgen::Issuer::from_ca_cert_der(root.0.der(), &root.1).unwrap();
    let expired = params.signed_by(&key, &issuer).unwrap();
    write(&plugin, spar_ca::PLUGIN_CA_CERT, &expired.pem());
    write(&plugin, spar_ca::PLUGIN_CA_KEY, &key.serialize_pem());
    let err = Ca::load_plugin(&plugin, &state).unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
    write(&plugin, spar_ca::PLUGIN_CA_CERT, &direct.0.pem());

    // A key that is not the CA certificate's is refused at load.
    write(&plugin, spar_ca::PLUGIN_CA_KEY, &middle.1.serialize_pem());
    let err = Ca::load_plugin(&plugin, &state).unwrap_err().to_string();
    assert!(err.contains("not the issuing certificate's key"), "{err}");
}

fn der_csr(id: &str) -> Vec<u8> {
    der_of_csr(&csr(id).0)
}

fn der_of_csr(pem: &str) -> Vec<u8> {
    spar_ca::csr::csr_der_from_pem(pem).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_roots_are_trusted_at_once() {
    // The self-signed root signs; an older root (being rotated out) is still trusted.
    let dir = spar_tests::proc::scratch_dir("ca-roots");
    drop(Ca::load_or_create(&dir).unwrap());
    let old = ca_cert("old root", None);
    write(&dir, spar_ca::TRUSTED_ROOTS, &old.0.pem());
    let ca = Ca::load_or_create(&dir).unwrap();
    assert_eq!(ca.roots().len(), 2);
    assert_eq!(ca.roots()[1], old.0.pem());
    let served = Served::start(ca, Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    // A workload that only knows the old root cannot reach the new CA (its serving
    // certificate is the new root's), so use the bundle; the bundle it gets back is both.
    let mut client = served.client().await;
    let chain = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(der(&chain[1]).len(), 2, "the trust bundle: both roots");
    assert_eq!(chain[1], served.ca.trust_bundle());
    assert!(
        chain[1].starts_with(&served.ca.roots()[0]),
        "the signing root first"
    );
    verify_as_client_cert(&chain, &chain[1]);
    served.stop().await;
}

#[test]
fn issued_keys_match_their_csr_for_every_key_type() {
    let ca = fresh_ca();
    let id = spar_ca::SpiffeId::parse(SLEEP_ID).unwrap();
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri(SLEEP_ID)];
        let csr = params.serialize_request(&key).unwrap();
        let issued = ca.sign(csr.der(), &id, Duration::from_secs(60)).unwrap();
        let leaf = parse(der(&issued.chain[0]).remove(0));
        assert_eq!(
            leaf.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
        assert!(!matches!(
            leaf.public_key().parsed().unwrap(),
            PublicKey::RSA(_)
        ));
        verify_as_client_cert(&issued.chain, &ca.trust_bundle());
        verify_as_server_cert(&issued.chain, &ca.trust_bundle()).unwrap();
    }
}
