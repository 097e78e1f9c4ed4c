//! In-memory handshakes (rustls connections pumping bytes through Vecs, no sockets) between
//! configs built by spar-tls from certificates rcgen makes per test run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType as RcSan,
};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConnection, HandshakeKind, ServerConnection};
use spar_tls::{
    CertKey, ClientTls, Pem, SanMatcher, ServerTls, TlsError, TlsParams, TlsVersion, TlsWarning,
};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
}

impl Leaf {
    fn cert_key(&self) -> CertKey {
        CertKey {
            cert_chain: Pem::Inline(self.cert.clone().into_bytes()),
            private_key: Pem::Inline(self.key.clone().into_bytes()),
        }
    }
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> Pem {
        Pem::Inline(self.issuer.pem().into_bytes())
    }

    fn issue(&self, sans: Vec<RcSan>, expired: bool) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self, name: &str) -> Leaf {
        self.issue(vec![RcSan::DnsName(name.try_into().unwrap())], false)
    }

    fn client(&self, spiffe: &str) -> Leaf {
        self.issue(vec![RcSan::URI(spiffe.try_into().unwrap())], false)
    }
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn server_config(tls: &ServerTls) -> Arc<rustls::ServerConfig> {
    tls.build(now()).unwrap().value
}

fn client(tls: &ClientTls) -> spar_tls::UpstreamTls {
    tls.build(now()).unwrap().value
}

#[derive(Debug)]
enum Side {
    Client,
    Server,
}

/// Moves every byte `from` wants to write into `to`.
fn pump(
    from: &mut dyn FnMut(&mut Vec<u8>),
    to: &mut dyn FnMut(&[u8]) -> Result<(), rustls::Error>,
) -> Result<bool, rustls::Error> {
    let mut buf = Vec::new();
    from(&mut buf);
    if buf.is_empty() {
        return Ok(false);
    }
    to(&buf)?;
    Ok(true)
}

fn connect(
    server: &Arc<rustls::ServerConfig>,
    client: &spar_tls::UpstreamTls,
    peer: &str,
) -> Result<(ClientConnection, ServerConnection), (Side, rustls::Error)> {
    let name = match &client.sni {
        Some(n) => n.clone(),
        None => ServerName::try_from(peer.to_string()).unwrap(),
    };
    let mut c = ClientConnection::new(client.config.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    // Enough round trips for a full TLS 1.2 handshake and the TLS 1.3 tickets after one.
    for _ in 0..10 {
        let c_to_s = pump(
            &mut |buf| {
                while c.wants_write() {
                    c.write_tls(buf).unwrap();
                }
            },
            &mut |mut bytes| {
                while !bytes.is_empty() {
                    s.read_tls(&mut bytes).unwrap();
                    s.process_new_packets()?;
                }
                Ok(())
            },
        )
        .map_err(|e| (Side::Server, e))?;
        let s_to_c = pump(
            &mut |buf| {
                while s.wants_write() {
                    s.write_tls(buf).unwrap();
                }
            },
            &mut |mut bytes| {
                while !bytes.is_empty() {
                    c.read_tls(&mut bytes).unwrap();
                    c.process_new_packets()?;
                }
                Ok(())
            },
        )
        .map_err(|e| (Side::Client, e))?;
        if !c_to_s && !s_to_c {
            break;
        }
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "handshake stalled"
    );
    Ok((c, s))
}

fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

struct World {
    ca: Ca,
    a: Leaf,
    b: Leaf,
    wild: Leaf,
}

fn world() -> World {
    let ca = Ca::new("spar test CA");
    let a = ca.server("a.example");
    let b = ca.server("b.example");
    let wild = ca.server("*.wild.example");
    World { ca, a, b, wild }
}

fn trusting(ca: &Ca, sni: &str) -> ClientTls {
    ClientTls {
        sni: Some(sni.to_string()),
        ca: Some(ca.pem()),
        ..ClientTls::default()
    }
}

#[test]
fn sni_picks_the_certificate() {
    let w = world();
    let server = server_config(&ServerTls {
        certs: vec![w.a.cert_key(), w.b.cert_key(), w.wild.cert_key()],
        ..ServerTls::default()
    });
    for (sni, expected) in [
        (Some("a.example"), &w.a),
        (Some("b.example"), &w.b),
        (Some("B.Example"), &w.b),
        (Some("x.wild.example"), &w.wild),
        (Some("unknown.example"), &w.a),
        (Some("x.y.wild.example"), &w.a),
        (None, &w.a),
    ] {
        let tls = ClientTls {
            sni: sni.map(str::to_string),
            ca: Some(w.ca.pem()),
            ..ClientTls::default()
        };
        let (c, _) = connect(&server, &client(&tls), "10.0.0.1").unwrap();
        let seen = c.peer_certificates().unwrap()[0].to_vec();
        assert!(seen == leaf_der(&expected.cert), "SNI {sni:?}");
    }
}

#[test]
fn alpn_is_negotiated() {
    let w = world();
    let server = server_config(&ServerTls {
        certs: vec![w.a.cert_key()],
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ..ServerTls::default()
    });
    for (offered, chosen) in [
        (vec![&b"http/1.1"[..]], Some(&b"http/1.1"[..])),
        (vec![b"h2", b"http/1.1"], Some(b"h2")),
        (vec![], None),
    ] {
        let tls = ClientTls {
            alpn: offered.iter().map(|p| p.to_vec()).collect(),
            ..trusting(&w.ca, "a.example")
        };
        let (c, s) = connect(&server, &client(&tls), "").unwrap();
        assert_eq!(c.alpn_protocol(), chosen);
        assert_eq!(s.alpn_protocol(), chosen);
    }
}

fn versions(min: Option<TlsVersion>, max: Option<TlsVersion>) -> TlsParams {
    TlsParams {
        min_version: min,
        max_version: max,
        cipher_suites: Vec::new(),
    }
}

#[test]
fn versions_are_negotiated_within_the_ranges() {
    let w = world();
    let server = |min, max| {
        server_config(&ServerTls {
            certs: vec![w.a.cert_key()],
            params: versions(min, max),
            ..ServerTls::default()
        })
    };
    let client_with = |min, max| {
        client(&ClientTls {
            params: versions(min, max),
            ..trusting(&w.ca, "a.example")
        })
    };
    let (c, _) = connect(&server(None, None), &client_with(None, None), "").unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let (c, _) = connect(
        &server(None, Some(TlsVersion::Tls12)),
        &client_with(None, None),
        "",
    )
    .unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let refused = connect(
        &server(Some(TlsVersion::Tls13), None),
        &client_with(None, Some(TlsVersion::Tls12)),
        "",
    );
    assert!(
        matches!(refused, Err((Side::Server, _))),
        "{:?}",
        refused.err()
    );
}

/// The ClientHello of a TLS 1.2-only rustls client, patched by `patch`.
fn patched_tls12_hello(patch: impl Fn(&mut Vec<u8>, usize)) -> Vec<u8> {
    let w = world();
    let tls = ClientTls {
        params: versions(None, Some(TlsVersion::Tls12)),
        ..trusting(&w.ca, "a.example")
    };
    let up = client(&tls);
    let mut c = ClientConnection::new(up.config.clone(), up.sni.clone().unwrap()).unwrap();
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    // Record header (5), handshake header (4), legacy_version (2), random (32).
    let session_id_at = 5 + 4 + 2 + 32;
    let suites_at = session_id_at + 1 + usize::from(hello[session_id_at]);
    patch(&mut hello, suites_at);
    hello
}

fn server_refuses(hello: &[u8]) -> rustls::Error {
    let w = world();
    let server = server_config(&ServerTls {
        certs: vec![w.a.cert_key()],
        ..ServerTls::default()
    });
    let mut s = ServerConnection::new(server).unwrap();
    s.read_tls(&mut &hello[..]).unwrap();
    s.process_new_packets().unwrap_err()
}

#[test]
fn tls_1_1_is_refused() {
    // The same hello claiming TLS 1.1, in legacy_version and in supported_versions.
    let hello = patched_tls12_hello(|h, _| {
        h[9..11].copy_from_slice(&[3, 2]);
        let ext = [0, 43, 0, 3, 2, 3, 3];
        let at = h
            .windows(ext.len())
            .position(|w| w == ext)
            .expect("supported_versions");
        h[at + 5..at + 7].copy_from_slice(&[3, 2]);
    });
    let spar_tls::Peek::Hello(peeked) = spar_tls::peek(&hello) else {
        panic!("not a hello")
    };
    assert_eq!(peeked.versions, vec![spar_tls::client_hello::TLS11]);
    let err = server_refuses(&hello);
    assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
}

#[test]
fn weak_suites_are_refused() {
    // Every suite offered replaced by ECDHE-ECDSA-AES128-SHA (CBC).
    let hello = patched_tls12_hello(|h, at| {
        let len = usize::from(u16::from_be_bytes([h[at], h[at + 1]]));
        for i in (at + 2..at + 2 + len).step_by(2) {
            h[i..i + 2].copy_from_slice(&[0xc0, 0x09]);
        }
    });
    let err = server_refuses(&hello);
    assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
    // And a configured weak suite is an error that names it.
    let w = world();
    let err = ServerTls {
        certs: vec![w.a.cert_key()],
        params: TlsParams {
            cipher_suites: vec!["ECDHE-ECDSA-AES128-SHA".into()],
            ..TlsParams::default()
        },
        ..ServerTls::default()
    }
    .build(now())
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::CipherSuite { name, .. } if name == "ECDHE-ECDSA-AES128-SHA"),
        "{err}"
    );
}

#[test]
fn client_certificates() {
    let w = world();
    let other = Ca::new("another CA");
    let mesh_id = "spiffe://cluster.local/ns/default/sa/web";
    let good = w.ca.client(mesh_id);
    let foreign = other.client(mesh_id);
    let wrong_id = w.ca.client("spiffe://cluster.local/ns/default/sa/intruder");
    let server = |require, sans: Vec<SanMatcher>| {
        server_config(&ServerTls {
            certs: vec![w.a.cert_key()],
            client_ca: Some(w.ca.pem()),
            require_client_cert: require,
            verify_client_san: sans,
            ..ServerTls::default()
        })
    };
    let with_cert = |leaf: Option<&Leaf>| {
        client(&ClientTls {
            client_cert: leaf.map(Leaf::cert_key),
            ..trusting(&w.ca, "a.example")
        })
    };
    let required = server(true, vec![]);
    let (_, s) = connect(&required, &with_cert(Some(&good)), "").unwrap();
    assert!(s.peer_certificates().is_some());
    assert!(matches!(
        connect(&required, &with_cert(None), ""),
        Err((Side::Server, _))
    ));
    assert!(matches!(
        connect(&required, &with_cert(Some(&foreign)), ""),
        Err((Side::Server, _))
    ));
    // Optional: no certificate is fine, a bad one is not.
    let optional = server(false, vec![]);
    let (_, s) = connect(&optional, &with_cert(None), "").unwrap();
    assert!(s.peer_certificates().is_none());
    assert!(matches!(
        connect(&optional, &with_cert(Some(&foreign)), ""),
        Err((Side::Server, _))
    ));
    // SAN matchers on the client's identity.
    let only_web = server(true, vec![SanMatcher::uri(mesh_id)]);
    connect(&only_web, &with_cert(Some(&good)), "").unwrap();
    assert!(matches!(
        connect(&only_web, &with_cert(Some(&wrong_id)), ""),
        Err((Side::Server, _))
    ));
}

#[test]
fn upstream_verification() {
    let w = world();
    let server = server_config(&ServerTls {
        certs: vec![w.a.cert_key()],
        ..ServerTls::default()
    });
    let other = Ca::new("another CA");
    let try_client = |tls: ClientTls| connect(&server, &client(&tls), "").map(|_| ());
    // Chain and SAN.
    try_client(ClientTls {
        verify_san: vec![SanMatcher::dns("a.example")],
        ..trusting(&w.ca, "a.example")
    })
    .unwrap();
    let wrong_san = try_client(ClientTls {
        verify_san: vec![SanMatcher::dns("b.example")],
        ..trusting(&w.ca, "a.example")
    });
    assert!(
        matches!(
            wrong_san,
            Err((Side::Client, rustls::Error::InvalidCertificate(_)))
        ),
        "{wrong_san:?}"
    );
    let untrusted = try_client(trusting(&other, "a.example"));
    assert!(matches!(
        untrusted,
        Err((Side::Client, rustls::Error::InvalidCertificate(_)))
    ));
    // Envoy checks the SNI only when asked to.
    try_client(trusting(&w.ca, "elsewhere.example")).unwrap();
    let wrong_sni = try_client(ClientTls {
        verify_sni: true,
        ..trusting(&w.ca, "elsewhere.example")
    });
    assert!(matches!(
        wrong_sni,
        Err((Side::Client, rustls::Error::InvalidCertificate(_)))
    ));
    try_client(ClientTls {
        verify_sni: true,
        ..trusting(&w.ca, "a.example")
    })
    .unwrap();
    // No trusted CA: not verified, as in Envoy, and said so.
    let built = ClientTls {
        sni: Some("a.example".into()),
        ..ClientTls::default()
    }
    .build(now())
    .unwrap();
    assert_eq!(built.warnings, vec![TlsWarning::ServerNotVerified]);
    connect(&server, &built.value, "").unwrap();
}

#[test]
fn sessions_resume() {
    let w = world();
    for max in [None, Some(TlsVersion::Tls12)] {
        let server = server_config(&ServerTls {
            certs: vec![w.a.cert_key()],
            params: versions(None, max),
            ..ServerTls::default()
        });
        let up = client(&trusting(&w.ca, "a.example")).for_worker();
        let (c, _) = connect(&server, &up, "").unwrap();
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
        let (c, _) = connect(&server, &up, "").unwrap();
        assert_eq!(
            c.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "max {max:?}"
        );
        // Another worker's cache starts empty.
        let (c, _) = connect(&server, &up.for_worker(), "").unwrap();
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    }
    // No cache: never resumed.
    let server = server_config(&ServerTls {
        certs: vec![w.a.cert_key()],
        ..ServerTls::default()
    });
    let up = client(&ClientTls {
        session_cache: 0,
        ..trusting(&w.ca, "a.example")
    });
    connect(&server, &up, "").unwrap();
    let (c, _) = connect(&server, &up, "").unwrap();
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
}

/// A scratch directory for PEM files, unique to this test process and name.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("spar-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_errors_name_the_file() {
    let w = world();
    let dir = scratch("errors");
    let cert_path = dir.join("a.crt");
    let key_path = dir.join("a.key");
    let b_key_path = dir.join("b.key");
    std::fs::write(&cert_path, &w.a.cert).unwrap();
    std::fs::write(&key_path, &w.a.key).unwrap();
    std::fs::write(&b_key_path, &w.b.key).unwrap();
    let files = |cert: &std::path::Path, key: &std::path::Path| CertKey {
        cert_chain: Pem::File(cert.to_path_buf()),
        private_key: Pem::File(key.to_path_buf()),
    };
    let build = |ck: CertKey| {
        ServerTls {
            certs: vec![ck],
            ..ServerTls::default()
        }
        .build(now())
    };
    build(files(&cert_path, &key_path)).unwrap();

    let missing = dir.join("missing.crt");
    let err = build(files(&missing, &key_path)).unwrap_err();
    assert!(
        matches!(err, TlsError::Read { .. }) && err.to_string().contains("missing.crt"),
        "{err}"
    );
    // A key file given as the certificate, and the reverse.
    let err = build(files(&key_path, &key_path)).unwrap_err();
    assert!(
        matches!(err, TlsError::NoCertificate { .. }) && err.to_string().contains("a.key"),
        "{err}"
    );
    let err = build(files(&cert_path, &cert_path)).unwrap_err();
    assert!(
        matches!(err, TlsError::NoPrivateKey { .. }) && err.to_string().contains("a.crt"),
        "{err}"
    );
    let err = build(files(&cert_path, &b_key_path)).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyMismatch { .. })
            && err.to_string().contains("b.key")
            && err.to_string().contains("a.crt"),
        "{err}"
    );
    let err = ServerTls::default().build(now()).unwrap_err();
    assert!(matches!(err, TlsError::NoServerCertificate));
    let err = ServerTls {
        certs: vec![w.a.cert_key()],
        require_client_cert: true,
        ..ServerTls::default()
    }
    .build(now())
    .unwrap_err();
    assert!(matches!(err, TlsError::ClientCertWithoutCa));
    let err = ClientTls {
        sni: Some("not a name".into()),
        ..ClientTls::default()
    }
    .build(now())
    .unwrap_err();
    assert!(matches!(err, TlsError::BadSni { .. }));
    let err = ClientTls {
        verify_san: vec![SanMatcher::dns("a.example")],
        ..ClientTls::default()
    }
    .build(now())
    .unwrap_err();
    assert!(matches!(err, TlsError::SanWithoutCa));
    let garbage =
        Pem::Inline(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_vec());
    let err = build(CertKey {
        cert_chain: garbage,
        private_key: Pem::File(key_path.clone()),
    })
    .unwrap_err();
    assert!(
        matches!(err, TlsError::Pem { .. }) && err.to_string().contains("inline PEM"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn expired_certificates_load_with_a_warning() {
    let ca = Ca::new("spar test CA");
    let old = ca.issue(
        vec![RcSan::DnsName("old.example".try_into().unwrap())],
        true,
    );
    let built = ServerTls {
        certs: vec![old.cert_key()],
        ..ServerTls::default()
    }
    .build(now())
    .unwrap();
    assert!(
        matches!(
            built.warnings.as_slice(),
            [TlsWarning::Expired {
                not_after: 978_307_200,
                ..
            }]
        ),
        "{:?}",
        built.warnings
    );
    let fresh = ServerTls {
        certs: vec![ca.server("new.example").cert_key()],
        ..ServerTls::default()
    };
    assert!(fresh.build(now()).unwrap().warnings.is_empty());
}
