//! Header field semantics shared by the parsers and the encoders: which fields the codec
//! cares about, message framing (`Content-Length`, `Transfer-Encoding`) and `Connection`
//! options, and the character classes of the grammar.

#[cfg(test)]
mod tests;

/// The header fields the codec gives meaning to. Everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XRequestId,
    Other,
}

impl Field {
    /// Classifies a field name, case-insensitively. Dispatches on the length first so a
    /// typical name costs one or two comparisons.
    pub(crate) fn of(name: &[u8]) -> Field {
        // Most fields are none of ours: a table lookup on first byte and length turns
        // them away before the dispatch on length, whose indirect jump mispredicts (it was
        // 8% of a parse-and-forward profile of a browser-like request).
        let Some(&first) = name.first() else {
            return Field::Other;
        };
        if name.len() >= 32 || CANDIDATES[usize::from(first)] & (1 << name.len()) == 0 {
            return Field::Other;
        }
        let is = |lower: &[u8]| name.eq_ignore_ascii_case(lower);
        match name.len() {
            2 if is(b"te") => Field::Te,
            4 if is(b"host") => Field::Host,
            6 if is(b"expect") => Field::Expect,
            7 if is(b"upgrade") => Field::Upgrade,
            7 if is(b"trailer") => Field::Trailer,
            10 if is(b"connection") => Field::Connection,
            10 if is(b"keep-alive") => Field::KeepAlive,
            12 if is(b"x-request-id") => Field::XRequestId,
            14 if is(b"content-length") => Field::ContentLength,
            15 if is(b"x-forwarded-for") => Field::XForwardedFor,
            16 if is(b"proxy-connection") => Field::ProxyConnection,
            17 if is(b"transfer-encoding") => Field::TransferEncoding,
            17 if is(b"x-forwarded-proto") => Field::XForwardedProto,
            _ => Field::Other,
        }
    }

    /// Hop-by-hop fields always removed when forwarding (RFC 9110 7.6.1, plus the
    /// non-standard `Keep-Alive` and `Proxy-Connection`). `Upgrade` is handled apart since
    /// it survives on upgrades.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Field::Connection
                | Field::KeepAlive
                | Field::ProxyConnection
                | Field::Te
                | Field::Trailer
                | Field::TransferEncoding
        )
    }
}

/// The lowercase names `Field::of` knows.
const KNOWN_NAMES: [&[u8]; 13] = [
    b"te",
    b"host",
    b"expect",
    b"upgrade",
    b"trailer",
    b"connection",
    b"keep-alive",
    b"x-request-id",
    b"content-length",
    b"x-forwarded-for",
    b"proxy-connection",
    b"transfer-encoding",
    b"x-forwarded-proto",
];

/// For each first byte, bit `n` is set when a known name of length `n` starts with it.
static CANDIDATES: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        let name = KNOWN_NAMES[i];
        let bit = 1u32 << name.len();
        table[name[0] as usize] |= bit;
        table[name[0].to_ascii_uppercase() as usize] |= bit;
        i += 1;
    }
    table
};

/// The elements of a comma-separated list field value (RFC 9110 5.6.1), with their
/// surrounding whitespace removed and empty elements skipped.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// `value` without leading and trailing SP / HTAB.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// Why a head's framing fields were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    ContentLength,
    TransferEncoding,
}

/// What the `Transfer-Encoding` fields of a head amount to, read across all of them in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TransferCoding {
    /// No `Transfer-Encoding` field.
    #[default]
    Absent,
    /// Present, but no coding yet (only empty list elements so far).
    Empty,
    /// Exactly one `chunked`, and nothing after it.
    Chunked,
}

/// Framing and connection facts gathered in the single pass over a head's fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Framing {
    pub(crate) content_length: Option<u64>,
    pub(crate) transfer_coding: TransferCoding,
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
    /// A `Connection` option that names some other field (to be removed on forwarding).
    pub(crate) nominates: bool,
}

impl Framing {
    /// One `Content-Length` field: `1*DIGIT`, fitting u64, and the only one in the head
    /// (a second one is refused even when identical: RFC 9112 6.3 allows refusing, and two
    /// parsers disagreeing on which one counts is the smuggling primitive).
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<(), FramingError> {
        if self.content_length.is_some() {
            return Err(FramingError::ContentLength);
        }
        self.content_length = Some(parse_decimal(value).ok_or(FramingError::ContentLength)?);
        Ok(())
    }

    /// One `Transfer-Encoding` field, continuing the list of earlier ones. Only `chunked`
    /// is accepted, exactly once: any other coding (we decode none), or anything after
    /// `chunked`, is refused.
    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), FramingError> {
        if self.transfer_coding == TransferCoding::Absent {
            self.transfer_coding = TransferCoding::Empty;
        }
        for coding in list_items(value) {
            if self.transfer_coding == TransferCoding::Chunked
                || !coding.eq_ignore_ascii_case(b"chunked")
            {
                return Err(FramingError::TransferEncoding);
            }
            self.transfer_coding = TransferCoding::Chunked;
        }
        Ok(())
    }

    /// One `Connection` field: records `close`, `keep-alive`, `upgrade`, and whether it
    /// names any other field.
    pub(crate) fn connection(&mut self, value: &[u8]) {
        for option in list_items(value) {
            match ConnectionOption::of(option) {
                ConnectionOption::Close => self.close = true,
                ConnectionOption::KeepAlive => self.keep_alive = true,
                ConnectionOption::Upgrade => self.upgrade = true,
                ConnectionOption::Field => self.nominates = true,
            }
        }
    }

    /// Whether the connection stays open after this message, by version (RFC 9112 9.3).
    pub(crate) fn persistent(&self, http11: bool) -> bool {
        !self.close && (http11 || self.keep_alive)
    }
}

/// What one `Connection` list element means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionOption {
    Close,
    KeepAlive,
    Upgrade,
    /// Names a field to drop when forwarding.
    Field,
}

impl ConnectionOption {
    pub(crate) fn of(option: &[u8]) -> ConnectionOption {
        if option.eq_ignore_ascii_case(b"close") {
            ConnectionOption::Close
        } else if option.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionOption::KeepAlive
        } else if option.eq_ignore_ascii_case(b"upgrade") {
            ConnectionOption::Upgrade
        } else {
            ConnectionOption::Field
        }
    }
}

/// `1*DIGIT` as u64; None on anything else (sign, space, comma, empty) or overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// tchar (RFC 9110 5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// A byte allowed in a field value: HTAB, SP, VCHAR, obs-text (RFC 9110 5.5).
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A byte of an authority without userinfo: unreserved, pct-encoded, sub-delims, ':' and
/// the IP-literal brackets (RFC 3986 3.2). '@' is refused: userinfo in an HTTP target is
/// deprecated and a recipient should treat it as an error (RFC 9110 4.2.4).
pub(crate) fn is_authority_byte(b: u8) -> bool {
    AUTHORITY[usize::from(b)]
}

/// Whether every byte of `authority` may appear in a Host value or a target's authority.
pub(crate) fn is_valid_authority(authority: &[u8]) -> bool {
    authority.iter().all(|&b| is_authority_byte(b))
}

static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

static AUTHORITY: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            );
        i += 1;
    }
    table
};
