//! Mechanics shared by the request and response parsers: header slots for httparse,
//! recording where each parsed part lies so it can be sliced out of the frozen head
//! without copying, and the line-ending checks httparse leaves to us.

use std::mem::MaybeUninit;

use bytes::Bytes;

/// httparse header slots kept on the stack; a `max_headers` above this falls back to the
/// heap. 128 covers Envoy's default of 100. The slots are uninitialised, so this costs
/// nothing per parse.
pub(crate) const STACK_HEADERS: usize = 128;

/// Header spans kept on the stack; heads with more fields put theirs on the heap. Spans are
/// zeroed per parse (16 bytes each), so this stays near typical field counts (5 to 20)
/// rather than at `STACK_HEADERS`: zeroing 2 KiB was a visible share of a parse.
const STACK_SPANS: usize = 32;

/// Buffers up to this many bytes go straight to httparse; longer ones only once they hold
/// an empty line, so a peer that dribbles a big head costs a memchr scan per read, not a
/// full parse per read. 2 KiB is above typical browser and gRPC heads (0.3 to 1 KiB), so
/// the common case parses once, straight away.
pub(crate) const EAGER_PARSE_BYTES: usize = 2 * 1024;

/// Runs `parse` with `max_headers` uninitialised httparse header slots: on the stack when
/// they fit, else on the heap.
pub(crate) fn with_slots<'b, R>(
    max_headers: usize,
    parse: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        parse(&mut slots[..max_headers])
    } else {
        let mut slots = vec![MaybeUninit::uninit(); max_headers];
        parse(&mut slots)
    }
}

/// Where the spans of a head's fields are kept between the scan of the borrowed buffer and
/// the building of the frozen head.
#[derive(Debug)]
pub(crate) struct SpanStore {
    stack: [HeaderSpan; STACK_SPANS],
    heap: Vec<HeaderSpan>,
}

impl SpanStore {
    pub(crate) fn new() -> Self {
        SpanStore {
            stack: [HeaderSpan::EMPTY; STACK_SPANS],
            heap: Vec::new(),
        }
    }

    /// Room for `count` spans, to be filled.
    pub(crate) fn room(&mut self, count: usize) -> &mut [HeaderSpan] {
        match self.stack.get_mut(..count) {
            Some(room) => room,
            None => {
                self.heap.resize(count, HeaderSpan::EMPTY);
                &mut self.heap
            }
        }
    }

    /// The `count` spans filled through `room(count)`.
    pub(crate) fn filled(&self, count: usize) -> &[HeaderSpan] {
        match self.stack.get(..count) {
            Some(filled) => filled,
            None => &self.heap,
        }
    }
}

/// Where a parsed part lies in the head, as byte offsets. Heads over 4 GiB are refused
/// before spans are taken, so u32 holds every offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) const EMPTY: Span = Span { start: 0, end: 0 };

    /// Where `part` lies within `head`. httparse only hands out subslices of the buffer it
    /// parsed, except the empty static string it uses for some empty parts: anything not
    /// inside `head` (and anything empty) is `EMPTY`.
    pub(crate) fn of(head: &[u8], part: &[u8]) -> Span {
        if part.is_empty() {
            return Span::EMPTY;
        }
        let start = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if end <= head.len() => Span::new(start, end),
            _ => Span::EMPTY,
        }
    }

    /// The span `start..end`; `EMPTY` if the offsets do not fit u32 (never, see above).
    pub(crate) fn new(start: usize, end: usize) -> Span {
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) if start <= end => Span { start, end },
            _ => Span::EMPTY,
        }
    }

    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    /// The part as a `Bytes` sharing `head`'s memory (no copy).
    pub(crate) fn slice(self, head: &Bytes) -> Bytes {
        let (start, end) = (self.start as usize, self.end as usize);
        if start < end && end <= head.len() {
            head.slice(start..end)
        } else {
            Bytes::new()
        }
    }
}

/// Where one header field's name and value lie in the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

impl HeaderSpan {
    pub(crate) const EMPTY: HeaderSpan = HeaderSpan {
        name: Span::EMPTY,
        value: Span::EMPTY,
    };

    pub(crate) fn of(head: &[u8], field: &httparse::Header<'_>) -> HeaderSpan {
        HeaderSpan {
            name: Span::of(head, field.name.as_bytes()),
            value: Span::of(head, field.value),
        }
    }
}

/// The header fields of a frozen head, built from their spans: one allocation (the Vec),
/// each name and value a refcounted slice of `head`.
pub(crate) fn headers(head: &Bytes, spans: &[HeaderSpan]) -> Vec<crate::Header> {
    let mut headers = Vec::with_capacity(spans.len());
    headers.extend(spans.iter().map(|span| crate::Header {
        name: span.name.slice(head),
        value: span.value.slice(head),
    }));
    headers
}

/// Whether `head` has a LF not preceded by CR. httparse accepts bare LF as a line end;
/// RFC 9112 2.2 allows that, but a proxy that does while its neighbours do not can be
/// made to see different messages, so we refuse it.
pub(crate) fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head.get(i - 1) != Some(&b'\r'))
}

/// Length of the empty lines (CRLF, or bare LF which is refused later) before a start line.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match buf.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            _ => return at,
        }
    }
}

/// Whether `buf` holds an empty line after some line, i.e. whether httparse might find a
/// complete head in it. A cheap memchr scan.
pub(crate) fn may_be_complete(buf: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', buf).any(|i| {
        matches!(
            buf.get(i + 1..),
            Some([b'\n', ..] | [b'\r', b'\n', ..] | [b'\r'])
        )
    })
}

/// Whether `buf` has a line starting with whitespace (obs-fold), to name the error when
/// httparse refuses a header name.
pub(crate) fn has_obs_fold(buf: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', buf).any(|i| matches!(buf.get(i + 1), Some(b' ' | b'\t')))
}

/// The first line of `buf` after any empty lines, without its line ending (or all of the
/// rest when no LF has arrived yet).
pub(crate) fn start_line(buf: &[u8]) -> &[u8] {
    let rest = buf.get(leading_empty_lines(buf)..).unwrap_or_default();
    let line = match memchr::memchr(b'\n', rest) {
        Some(lf) => rest.get(..lf).unwrap_or_default(),
        None => rest,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}
