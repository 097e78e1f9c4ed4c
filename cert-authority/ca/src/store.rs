//! The CA's files. A state directory (`--dir`) holds what spar-ca generates itself; a
//! plug-in directory (`--plugin-certs`) holds an operator's CA in Istio's `cacerts` layout.
//!
//! State directory (created 0700 when missing; keys 0600, written to a temporary file then renamed):
//! - `root-cert.pem`, `root-key.pem`: the self-signed root (ECDSA P-256, 10 years), made
//!   on first start and reused after;
//! - `token-key.pem`: the key that signs spar-ca's own bearer tokens (ECDSA P-256);
//! - `trusted-roots.pem` (optional, written by an operator): more roots to trust beside
//!   the signing one, for a root rotation; they join the trust bundle.
//!
//! Plug-in directory (Istio's names): `ca-cert.pem` (the issuing CA), `ca-key.pem` (its
//! PKCS#8 key), `root-cert.pem` (one or more roots, all trusted), `cert-chain.pem`
//! (optional: from `ca-cert.pem` up to the root, as Istio's samples write it).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::authority::{CLOCK_SKEW, Ca, CaError, Parts, pem, random_serial};
use crate::policy::ROOT_TTL;
use crate::token::TokenKey;

pub const ROOT_CERT: &str = "root-cert.pem";
pub const ROOT_KEY: &str = "root-key.pem";
pub const TOKEN_KEY: &str = "token-key.pem";
pub const TRUSTED_ROOTS: &str = "trusted-roots.pem";
pub const PLUGIN_CA_CERT: &str = "ca-cert.pem";
pub const PLUGIN_CA_KEY: &str = "ca-key.pem";
pub const PLUGIN_ROOT_CERT: &str = "root-cert.pem";
pub const PLUGIN_CERT_CHAIN: &str = "cert-chain.pem";

impl Ca {
    /// The self-signed CA in `dir`, created there on first use.
    pub fn load_or_create(dir: &Path) -> Result<Ca, CaError> {
        make_dir(dir)?;
        let (cert_path, key_path) = (dir.join(ROOT_CERT), dir.join(ROOT_KEY));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {}
            (true, false) => {
                return Err(invalid(&key_path, "missing, but its certificate is there"));
            }
            // A key without a certificate is what a crash between the two renames
            // leaves: no certificate was ever published for it, so it is replaced.
            (false, _) => create_root(dir)?,
        }
        let issuer_cert = read_certs(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(&cert_path, "no certificate"))?;
        let issuer_key = read_key(&key_path)?;
        let mut roots = vec![issuer_cert.clone()];
        let extra = dir.join(TRUSTED_ROOTS);
        if extra.exists() {
            roots.extend(read_certs(&extra)?);
        }
        Ca::from_parts(Parts {
            origin: dir.display().to_string(),
            issuer_cert,
            issuer_key,
            intermediates: Vec::new(),
            roots,
            token_key: load_or_create_token_key(dir)?,
        })
    }

    /// The operator's CA in `plugin_dir` (Istio's `cacerts` layout); spar-ca's own state
    /// (the token key) in `state_dir`.
    pub fn load_plugin(plugin_dir: &Path, state_dir: &Path) -> Result<Ca, CaError> {
        make_dir(state_dir)?;
        let cert_path = plugin_dir.join(PLUGIN_CA_CERT);
        let issuer_cert = read_certs(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(&cert_path, "no certificate"))?;
        let issuer_key = read_key(&plugin_dir.join(PLUGIN_CA_KEY))?;
        let roots_path = plugin_dir.join(PLUGIN_ROOT_CERT);
        let roots = read_certs(&roots_path)?;
        if roots.is_empty() {
            return Err(invalid(&roots_path, "no certificate"));
        }
        let chain_path = plugin_dir.join(PLUGIN_CERT_CHAIN);
        let intermediates = if chain_path.exists() {
            read_certs(&chain_path)?
                .into_iter()
                .filter(|c| *c != issuer_cert && !roots.contains(c))
                .collect()
        } else {
            Vec::new()
        };
        Ca::from_parts(Parts {
            origin: plugin_dir.display().to_string(),
            issuer_cert,
            issuer_key,
            intermediates,
            roots,
            token_key: load_or_create_token_key(state_dir)?,
        })
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> CaError {
    CaError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `dir` 0700 when it is missing. An existing directory keeps its mode (it is the
/// operator's), with a warning when others may write to it: they could swap the root.
fn make_dir(dir: &Path) -> Result<(), CaError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    if let Ok(meta) = fs::metadata(dir)
        && meta.permissions().mode() & 0o022 != 0
    {
        warn!(dir = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "CA state directory writable by others");
    }
    Ok(())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let bytes = fs::read(path).map_err(io(path))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("not PEM certificates: {e}")))
}

fn read_key(path: &Path) -> Result<KeyPair, CaError> {
    warn_if_readable(path);
    let text = fs::read_to_string(path).map_err(io(path))?;
    KeyPair::from_pem(&text).map_err(|e| {
        invalid(
            path,
            format!("not a PKCS#8 (`PRIVATE KEY`) ECDSA, RSA or Ed25519 key: {e}"),
        )
    })
}

fn warn_if_readable(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "private key readable by others");
    }
}

/// Writes `contents` to `dir/name` through a temporary file renamed into place, with `mode`.
fn write_file(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

fn create_root(dir: &Path) -> Result<(), CaError> {
    let fail = |e: rcgen::Error| invalid(dir, format!("generating the root: {e}"));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "spar");
    params
        .distinguished_name
        .push(DnType::CommonName, "spar-ca root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial().map_err(|e| invalid(dir, e.to_string()))?.0);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + ROOT_TTL;
    let cert = params.self_signed(&key).map_err(fail)?;
    // The key first: a crash before the certificate lands leaves a key alone, which the
    // next start replaces.
    write_file(dir, ROOT_KEY, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(dir, ROOT_CERT, cert.pem().as_bytes(), 0o644)?;
    info!(dir = %dir.display(), "self-signed root created");
    Ok(())
}

/// The token key in `dir`, created there on first use (what `spar-ca token` signs with).
pub fn load_or_create_token_key(dir: &Path) -> Result<TokenKey, CaError> {
    make_dir(dir)?;
    let path = dir.join(TOKEN_KEY);
    if !path.exists() {
        let der = TokenKey::generate_pkcs8().map_err(|e| invalid(&path, e.to_string()))?;
        write_file(dir, TOKEN_KEY, pem("PRIVATE KEY", &der).as_bytes(), 0o600)?;
    }
    warn_if_readable(&path);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&bytes)
        .map_err(|e| invalid(&path, format!("not a PKCS#8 key: {e}")))?;
    TokenKey::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| invalid(&path, e.to_string()))
}
