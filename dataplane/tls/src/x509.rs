//! The one thing read from certificates by hand: the validity period, for a warning at
//! load when a certificate has expired (webpki checks it at handshake time but does not
//! expose it). A minimal DER walk over fields every X.509 v3 certificate has.

use rustls::pki_types::{CertificateDer, UnixTime};

use crate::error::{TlsError, TlsWarning};

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;

/// Adds a warning when `cert` is expired or not yet valid at `now`.
pub(crate) fn check_validity(
    cert: &CertificateDer<'_>,
    source_name: &str,
    now: UnixTime,
    warnings: &mut Vec<TlsWarning>,
) -> Result<(), TlsError> {
    let Some((not_before, not_after)) = validity(cert) else {
        return Err(TlsError::BadCertificate {
            source_name: source_name.to_string(),
            reason: "no readable validity period".to_string(),
        });
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > not_after {
        warnings.push(TlsWarning::Expired {
            source_name: source_name.to_string(),
            not_after,
        });
    } else if now < not_before {
        warnings.push(TlsWarning::NotYetValid {
            source_name: source_name.to_string(),
            not_before,
        });
    }
    Ok(())
}

/// notBefore and notAfter in seconds since the Unix epoch.
pub(crate) fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (tag, certificate, _) = tlv(cert)?;
    let (tbs_tag, tbs, _) = tlv(certificate)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (first, _, after) = tlv(rest)?;
    if first == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    let (validity_tag, validity, _) = tlv(rest)?;
    if validity_tag != SEQUENCE {
        return None;
    }
    let (t1, v1, rest) = tlv(validity)?;
    let (t2, v2, _) = tlv(rest)?;
    Some((time(t1, v1)?, time(t2, v2)?))
}

/// One DER element: tag, contents, and the bytes after it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950 to 2049, RFC 5280 4.1.2.5.1) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, as seconds since the epoch.
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(text.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        (GENERALIZED_TIME, 15) => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(rest.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(UTC_TIME, b"000301000000Z"), Some(951_868_800));
        assert_eq!(
            time(GENERALIZED_TIME, b"20380119031408Z"),
            Some(2_147_483_648)
        );
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(UTC_TIME, b"691231235959Z"), Some(-1));
        assert_eq!(time(UTC_TIME, b"701301000000Z"), None);
        assert_eq!(time(UTC_TIME, b"7001010000000"), None);
        assert_eq!(time(GENERALIZED_TIME, b"700101000000Z"), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x00",
        ] {
            assert_eq!(validity(input), None);
        }
    }
}
