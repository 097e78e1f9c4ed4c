use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PublicKeyData as _, SanType,
};

use super::*;

const ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn request(params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
    params.serialize_request(key).unwrap().der().to_vec()
}

fn with_sans(sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    request(&params, &KeyPair::generate().unwrap())
}

#[test]
fn a_spiffe_csr_passes_with_its_key() {
    for alg in [
        &PKCS_ECDSA_P256_SHA256,
        &PKCS_ECDSA_P384_SHA384,
        &PKCS_ED25519,
    ] {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri(ID)];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ignored");
        params.is_ca = IsCa::ExplicitNoCa;
        let der = request(&params, &key);
        let checked = check_csr(&der).unwrap();
        assert_eq!(checked.identity.to_string(), ID);
        assert_eq!(checked.public_key, key.subject_public_key_info());
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        assert_eq!(
            check_csr(&csr_der_from_pem(&pem).unwrap())
                .unwrap()
                .identity
                .to_string(),
            ID
        );
    }
}

#[test]
fn other_names_are_refused() {
    let cases = [
        (
            vec![
                uri(ID),
                SanType::DnsName("evil.example".try_into().unwrap()),
            ],
            "DNS",
        ),
        (
            vec![
                SanType::DnsName("evil.example".try_into().unwrap()),
                uri(ID),
            ],
            "DNS",
        ),
        (
            vec![uri(ID), SanType::IpAddress([10, 0, 0, 1].into())],
            "IP",
        ),
        (
            vec![
                uri(ID),
                uri("spiffe://cluster.local/ns/kube-system/sa/admin"),
            ],
            "URI",
        ),
        (
            vec![uri(ID), SanType::Rfc822Name("a@b.c".try_into().unwrap())],
            "e-mail",
        ),
    ];
    for (sans, what) in cases {
        match check_csr(&with_sans(sans)) {
            Err(CsrError::ExtraSan(s)) => assert!(s.contains(what), "{s} for {what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(check_csr(&with_sans(vec![])), Err(CsrError::NoSan));
    assert_eq!(
        check_csr(&with_sans(vec![SanType::DnsName(
            "a.b".try_into().unwrap()
        )])),
        Err(CsrError::ExtraSan("DNS a.b".into()))
    );
    assert!(matches!(
        check_csr(&with_sans(vec![uri("https://cluster.local/ns/a/sa/b")])),
        Err(CsrError::NotSpiffe { .. })
    ));
    assert!(matches!(
        check_csr(&with_sans(vec![uri(
            "spiffe://cluster.local/ns/a/sa/b/extra"
        )])),
        Err(CsrError::NotSpiffe { .. })
    ));
}

#[test]
fn ca_requests_are_refused() {
    for constraints in [
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained(0),
    ] {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri(ID)];
        params.is_ca = IsCa::Ca(constraints);
        assert_eq!(
            check_csr(&request(&params, &KeyPair::generate().unwrap())),
            Err(CsrError::CaRequested)
        );
    }
}

#[test]
fn unknown_extensions_pass_only_when_not_critical() {
    for critical in [false, true] {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri(ID)];
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
        ext.set_criticality(critical);
        params.custom_extensions = vec![ext];
        let got = check_csr(&request(&params, &KeyPair::generate().unwrap()));
        if critical {
            assert_eq!(
                got,
                Err(CsrError::UnknownCritical("1.3.6.1.4.1.99999.1".into()))
            );
        } else {
            assert!(got.is_ok(), "{got:?}");
        }
    }
}

#[test]
fn broken_requests_are_malformed() {
    let good = with_sans(vec![uri(ID)]);
    assert!(check_csr(&good).is_ok());
    // The signature is the last bytes: flip one.
    let mut bad_sig = good.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    assert_eq!(check_csr(&bad_sig), Err(CsrError::BadSignature));
    // A byte of the signed part (inside the public key).
    let mut tampered = good.clone();
    tampered[60] ^= 0x40;
    assert!(check_csr(&tampered).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(check_csr(&trailing), Err(CsrError::Malformed(_))));
    for n in [0, 1, 10, good.len() / 2, good.len() - 1] {
        assert!(check_csr(&good[..n]).is_err(), "truncated to {n}");
    }
    assert!(matches!(
        check_csr(b"not a csr"),
        Err(CsrError::Malformed(_))
    ));
    assert_eq!(
        check_csr(&vec![0x30; MAX_CSR_BYTES + 1]),
        Err(CsrError::TooLarge)
    );
    assert_eq!(csr_der_from_pem("hello"), Err(CsrError::Pem));
    assert_eq!(
        csr_der_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(CsrError::Pem)
    );
}
