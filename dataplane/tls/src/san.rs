//! Subject alt name matchers: Envoy's `match_typed_subject_alt_names`.

use rustls::pki_types::CertificateDer;

/// Which subject alt names a matcher looks at. webpki exposes DNS and URI names (what the
/// mesh uses: SPIFFE identities are URI SANs); Envoy's EMAIL, IP_ADDRESS and OTHER_NAME are
/// for the config compiler to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    Dns,
    Uri,
}

/// Envoy's `StringMatcher` without `safe_regex` (the config compiler refuses it here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
}

/// One of Envoy's `SubjectAltNameMatcher`s. A certificate passes a list of matchers when
/// one of its names of the matcher's type matches one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatch,
    pub ignore_case: bool,
}

impl SanMatcher {
    /// A URI SAN equal to `uri`: a SPIFFE identity.
    pub fn uri(uri: impl Into<String>) -> SanMatcher {
        SanMatcher {
            san_type: SanType::Uri,
            matcher: StringMatch::Exact(uri.into()),
            ignore_case: false,
        }
    }

    /// A DNS SAN for `name`, as Envoy matches it: a wildcard SAN `*.example.com` covers
    /// `a.example.com` (one label).
    pub fn dns(name: impl Into<String>) -> SanMatcher {
        SanMatcher {
            san_type: SanType::Dns,
            matcher: StringMatch::Exact(name.into()),
            ignore_case: true,
        }
    }

    fn matches(&self, san: &str) -> bool {
        let fold = |s: &str| {
            if self.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let (san, wanted) = match &self.matcher {
            StringMatch::Exact(w)
            | StringMatch::Prefix(w)
            | StringMatch::Suffix(w)
            | StringMatch::Contains(w) => (fold(san), fold(w)),
        };
        match &self.matcher {
            StringMatch::Exact(_) => {
                san == wanted
                    || (self.san_type == SanType::Dns && dns_wildcard_covers(&san, &wanted))
            }
            StringMatch::Prefix(_) => san.starts_with(&wanted),
            StringMatch::Suffix(_) => san.ends_with(&wanted),
            StringMatch::Contains(_) => san.contains(&wanted),
        }
    }
}

/// Whether the SAN `*.rest` covers `name` (exactly one label in place of the `*`).
fn dns_wildcard_covers(san: &str, name: &str) -> bool {
    let Some(rest) = san.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, tail)) => !label.is_empty() && tail.eq_ignore_ascii_case(rest),
        None => false,
    }
}

/// The first URI SAN of `cert` (DER, end entity): a workload's SPIFFE identity. `None`
/// when it has none or does not parse.
pub fn first_uri_san(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    cert.valid_uri_names().next().map(str::to_owned)
}

/// Whether `cert` (DER, end entity) has a SAN matching one of `matchers`. An empty list
/// matches every certificate; an unparsable certificate matches none.
pub(crate) fn cert_matches(cert: &CertificateDer<'_>, matchers: &[SanMatcher]) -> bool {
    if matchers.is_empty() {
        return true;
    }
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    matchers.iter().any(|m| match m.san_type {
        SanType::Dns => cert.valid_dns_names().any(|san| m.matches(san)),
        SanType::Uri => cert.valid_uri_names().any(|san| m.matches(san)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matchers() {
        let m = |matcher, ignore_case| SanMatcher {
            san_type: SanType::Uri,
            matcher,
            ignore_case,
        };
        let spiffe = "spiffe://cluster.local/ns/default/sa/web";
        assert!(SanMatcher::uri(spiffe).matches(spiffe));
        assert!(!SanMatcher::uri(spiffe).matches("spiffe://cluster.local/ns/default/sa/WEB"));
        assert!(
            m(
                StringMatch::Exact("SPIFFE://cluster.local/ns/default/sa/web".into()),
                true
            )
            .matches(spiffe)
        );
        assert!(
            m(
                StringMatch::Prefix("spiffe://cluster.local/ns/default/".into()),
                false
            )
            .matches(spiffe)
        );
        assert!(
            !m(
                StringMatch::Prefix("spiffe://cluster.local/ns/other/".into()),
                false
            )
            .matches(spiffe)
        );
        assert!(m(StringMatch::Suffix("/sa/web".into()), false).matches(spiffe));
        assert!(m(StringMatch::Contains("/ns/default/".into()), false).matches(spiffe));
    }

    #[test]
    fn dns_wildcards() {
        assert!(SanMatcher::dns("a.example.com").matches("*.example.com"));
        assert!(SanMatcher::dns("A.Example.com").matches("*.example.com"));
        assert!(!SanMatcher::dns("a.b.example.com").matches("*.example.com"));
        assert!(!SanMatcher::dns("example.com").matches("*.example.com"));
        // A wildcard in the wanted name is literal.
        assert!(SanMatcher::dns("*.example.com").matches("*.example.com"));
        let exact_uri = SanMatcher {
            san_type: SanType::Uri,
            ..SanMatcher::dns("a.example.com")
        };
        assert!(!exact_uri.matches("*.example.com"));
    }
}
