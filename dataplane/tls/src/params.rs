//! Versions and cipher suites (Envoy's `TlsParameters`) into a ring `CryptoProvider`.

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as cs, default_provider};

use crate::error::{TlsError, TlsVersion, TlsWarning};

/// Envoy's `tls_params`: a version range and TLS 1.2 cipher suites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// Lowest version; `None` (Envoy's `TLS_AUTO`) is TLS 1.2. Below 1.2 is raised to 1.2
    /// with a warning: a floor can only be made safer.
    pub min_version: Option<TlsVersion>,
    /// Highest version; `None` is TLS 1.3. Below 1.2 is an error.
    pub max_version: Option<TlsVersion>,
    /// Cipher suite names, OpenSSL style (`ECDHE-ECDSA-AES128-GCM-SHA256`, Envoy's
    /// spelling, with `[A|B]` equal-preference groups) or IANA style
    /// (`TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`). Empty: every strong suite. As in Envoy
    /// the list governs TLS 1.2; TLS 1.3 suites are restricted only when the list names
    /// some. Anything but ECDHE with an AEAD cipher is refused.
    pub cipher_suites: Vec<String>,
}

/// The suites spar-proxy offers, with the names they go by.
const SUITES: &[(&str, &str, SupportedCipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        cs::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        cs::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Why a suite name not in [`SUITES`] is refused, from the parts of its name.
fn refusal(name: &str) -> &'static str {
    let upper = name.to_ascii_uppercase();
    let has = |part: &str| upper.contains(part);
    if [
        "NULL", "EXPORT", "RC4", "DES", "MD5", "ANON", "ADH", "AECDH",
    ]
    .iter()
    .any(|p| has(p))
    {
        "is broken (null, export, RC4, DES or anonymous); spar-proxy offers only ECDHE with AEAD ciphers"
    } else if !has("GCM") && !has("CHACHA20") && !has("POLY1305") {
        "is not an AEAD cipher (CBC or other); spar-proxy offers only ECDHE with AES-GCM or ChaCha20-Poly1305"
    } else if !has("ECDHE") {
        "has no forward secrecy (static RSA, DH or PSK key exchange); spar-proxy offers only ECDHE with AEAD ciphers"
    } else {
        "is unknown; spar-proxy offers ECDHE-{ECDSA,RSA}-{AES128-GCM-SHA256,AES256-GCM-SHA384,CHACHA20-POLY1305} and the TLS 1.3 suites"
    }
}

impl TlsParams {
    /// The ring provider restricted to the configured suites, and the versions to enable.
    pub(crate) fn resolve(
        &self,
        warnings: &mut Vec<TlsWarning>,
    ) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), TlsError> {
        let asked_min = self.min_version.unwrap_or(TlsVersion::Tls12);
        let max = self.max_version.unwrap_or(TlsVersion::Tls13);
        if asked_min > max {
            return Err(TlsError::Versions {
                min: asked_min,
                max,
                reason: "the minimum is above the maximum",
            });
        }
        if max < TlsVersion::Tls12 {
            return Err(TlsError::Versions {
                min: asked_min,
                max,
                reason: "spar-proxy speaks only TLS 1.2 and 1.3",
            });
        }
        if asked_min < TlsVersion::Tls12 {
            warnings.push(TlsWarning::MinVersionRaised { asked: asked_min });
        }
        let min = asked_min.max(TlsVersion::Tls12);
        let mut versions = Vec::new();
        if min <= TlsVersion::Tls13 && max >= TlsVersion::Tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= TlsVersion::Tls12 {
            versions.push(&rustls::version::TLS12);
        }

        let mut named = Vec::new();
        for group in &self.cipher_suites {
            let inner = group
                .strip_prefix('[')
                .and_then(|g| g.strip_suffix(']'))
                .unwrap_or(group);
            for name in inner.split('|').map(str::trim) {
                let Some((_, _, suite)) = SUITES
                    .iter()
                    .find(|(openssl, iana, _)| name == *openssl || name == *iana)
                else {
                    return Err(TlsError::CipherSuite {
                        name: name.to_string(),
                        reason: refusal(name),
                    });
                };
                if !named.contains(suite) {
                    named.push(*suite);
                }
            }
        }
        let is13 = |s: &SupportedCipherSuite| s.version() == &rustls::version::TLS13;
        let names13 = named.iter().any(is13);
        let names12 = named.iter().any(|s| !is13(s));
        let mut provider = default_provider();
        provider.cipher_suites.retain(|s| {
            let restricted = if is13(s) { names13 } else { names12 };
            !restricted || named.contains(s)
        });
        // Configured order is preference order; the rest keep ring's order.
        provider
            .cipher_suites
            .sort_by_key(|s| named.iter().position(|n| n == s).unwrap_or(usize::MAX));
        let usable = provider
            .cipher_suites
            .iter()
            .any(|s| versions.iter().any(|v| s.version() == *v));
        if !usable {
            return Err(TlsError::Versions {
                min,
                max,
                reason: "no configured cipher suite is usable with these versions",
            });
        }
        Ok((provider, versions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(min: Option<TlsVersion>, max: Option<TlsVersion>, suites: &[&str]) -> TlsParams {
        TlsParams {
            min_version: min,
            max_version: max,
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_are_every_strong_suite_on_1_2_and_1_3() {
        let mut w = Vec::new();
        let (provider, versions) = TlsParams::default().resolve(&mut w).unwrap();
        assert_eq!(provider.cipher_suites.len(), 9);
        assert_eq!(versions.len(), 2);
        assert!(w.is_empty());
    }

    #[test]
    fn envoy_names_groups_and_iana_names() {
        let mut w = Vec::new();
        let p = params(
            None,
            None,
            &[
                "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ],
        );
        let (provider, _) = p.resolve(&mut w).unwrap();
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        // Three TLS 1.2 suites in the configured order, then the three TLS 1.3 suites.
        assert_eq!(names.len(), 6, "{names:?}");
        assert_eq!(names[0], "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(names[2], "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
    }

    #[test]
    fn weak_and_unknown_suites_are_refused_by_name() {
        for (name, reason) in [
            ("AES128-SHA", "not an AEAD"),
            ("ECDHE-RSA-AES128-SHA", "not an AEAD"),
            ("AES128-GCM-SHA256", "no forward secrecy"),
            ("DES-CBC3-SHA", "broken"),
            ("ECDHE-RSA-NULL-SHA", "broken"),
            ("ECDHE-RSA-AES999-GCM-SHA256", "unknown"),
        ] {
            let err = params(None, None, &["ECDHE-RSA-AES128-GCM-SHA256", name])
                .resolve(&mut Vec::new())
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{name}`")) && text.contains(reason),
                "{text}"
            );
        }
    }

    #[test]
    fn version_ranges() {
        let mut w = Vec::new();
        let (_, v) = params(Some(TlsVersion::Tls10), None, &[])
            .resolve(&mut w)
            .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            w,
            vec![TlsWarning::MinVersionRaised {
                asked: TlsVersion::Tls10
            }]
        );
        let (_, v) = params(Some(TlsVersion::Tls13), None, &[])
            .resolve(&mut Vec::new())
            .unwrap();
        assert_eq!(v, vec![&rustls::version::TLS13]);
        let (_, v) = params(None, Some(TlsVersion::Tls12), &[])
            .resolve(&mut Vec::new())
            .unwrap();
        assert_eq!(v, vec![&rustls::version::TLS12]);
        assert!(
            params(None, Some(TlsVersion::Tls11), &[])
                .resolve(&mut Vec::new())
                .is_err()
        );
        assert!(
            params(Some(TlsVersion::Tls13), Some(TlsVersion::Tls12), &[])
                .resolve(&mut Vec::new())
                .is_err()
        );
        // A list naming only TLS 1.3 suites leaves TLS 1.2's alone.
        let (p, _) = params(None, None, &["TLS_AES_128_GCM_SHA256"])
            .resolve(&mut Vec::new())
            .unwrap();
        assert_eq!(p.cipher_suites.len(), 7);
    }
}
