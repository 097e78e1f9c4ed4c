//! Test certificates, made per run with rcgen (ECDSA P-256): a CA and leaves it signs,
//! written as PEM files into a scratch directory for bootstraps and real clients.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM, written to `dir`.
    pub cert: PathBuf,
    dir: PathBuf,
}

/// A leaf certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
        let cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert, issuer.pem()).expect("write ca");
        Ca {
            issuer,
            cert,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for DNS names (and 127.0.0.1), written as `<file>.pem` and
    /// `<file>.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> Leaf {
        let mut sans: Vec<SanType> = names
            .iter()
            .map(|n| SanType::DnsName((*n).try_into().expect("dns name")))
            .collect();
        sans.push(SanType::IpAddress([127, 0, 0, 1].into()));
        self.issue(file, names.first().copied().unwrap_or(file), sans)
    }

    /// A workload certificate whose only name is `uri` (a SPIFFE ID), client and server.
    pub fn workload(&self, file: &str, uri: &str) -> Leaf {
        let san = SanType::URI(uri.try_into().expect("uri"));
        self.issue(file, file, vec![san])
    }

    fn issue(&self, file: &str, cn: &str, sans: Vec<SanType>) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}
