//! Envoy's `safe_regex` (RE2 syntax) on the `regex` crate, whose engines, like RE2's, run in
//! time linear in the input: no backtracking, so no catastrophic patterns at match time.
//! What remains is the cost of compiling a hostile pattern (huge counted repetitions, deep
//! nesting), which the limits below refuse at config time.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// Longest pattern accepted, in bytes. Envoy's own default program-size limit (100 RE2
/// instructions) is far tighter; Istio-generated regexes are well under 1 KiB.
const MAX_PATTERN_BYTES: usize = 4096;
/// Most heap one compiled regex may use, in bytes (the crate's `size_limit`): 256 KiB keeps
/// 10,000 routes with a regex each within a few GB worst case and refuses `a{1000}{1000}`.
const SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Most heap the lazy DFA's cache may use per regex and thread, in bytes. Past it the
/// crate falls back to a slower engine; it never fails a match.
const DFA_SIZE_LIMIT_BYTES: usize = 1024 * 1024;
/// Deepest nesting of groups and repetitions (the crate's `nest_limit`).
const NEST_LIMIT: u32 = 64;

/// Why a pattern or a substitution was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RegexError(pub String);

/// A compiled RE2-like regex: `full` is anchored (`^(?:p)$`: Envoy matches `safe_regex`
/// against the whole value), `search` is not (for rewrites).
#[derive(Clone)]
pub struct SafeRegex {
    full: Regex,
    search: Regex,
    pattern: String,
}

impl SafeRegex {
    /// Compiles `pattern`, refusing patterns over 4096 bytes, nested deeper than 64 or whose
    /// compiled form would exceed 256 KiB.
    pub fn new(pattern: &str) -> Result<Self, RegexError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(RegexError(format!(
                "regex is {} bytes long; at most {MAX_PATTERN_BYTES} are allowed",
                pattern.len()
            )));
        }
        let build = |p: &str| {
            RegexBuilder::new(p)
                .size_limit(SIZE_LIMIT_BYTES)
                .dfa_size_limit(DFA_SIZE_LIMIT_BYTES)
                .nest_limit(NEST_LIMIT)
                .build()
                .map_err(|e| RegexError(describe(&e)))
        };
        let search = build(pattern)?;
        let full = build(&format!("^(?:{pattern})$"))?;
        Ok(Self {
            full,
            search,
            pattern: pattern.to_owned(),
        })
    }

    /// Whether the whole of `v` matches.
    pub fn is_full_match(&self, v: &[u8]) -> bool {
        self.full.is_match(v)
    }

    /// The pattern as configured.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The unanchored regex, for substitutions.
    pub(crate) fn search(&self) -> &Regex {
        &self.search
    }
}

fn describe(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("regex is too complex (its compiled form exceeds {limit} bytes)")
        }
        // The syntax error's Display spans several lines with a caret diagram; keep the
        // last line, which says what is wrong.
        regex::Error::Syntax(s) => {
            let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s);
            format!(
                "invalid regex: {}",
                last.trim_start_matches("error: ").trim()
            )
        }
        other => format!("invalid regex: {other}"),
    }
}

impl fmt::Debug for SafeRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafeRegex({:?})", self.pattern)
    }
}

impl PartialEq for SafeRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for SafeRegex {}

/// Envoy `RegexMatchAndSubstitute`: every match of `regex` in the input is replaced by
/// `substitution`, where `\0` to `\9` stand for capture groups and `\\` for a backslash
/// (RE2's rewrite syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexRewrite {
    /// The pattern (searched, not anchored).
    pub regex: SafeRegex,
    /// The replacement, RE2 syntax; checked by [`RegexRewrite::new`].
    pub substitution: String,
}

impl RegexRewrite {
    /// Checks that `substitution` only names groups `regex` has and escapes nothing else.
    pub fn new(regex: SafeRegex, substitution: String) -> Result<Self, RegexError> {
        let groups = regex.search.captures_len() - 1;
        let mut bytes = substitution.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                continue;
            }
            match bytes.next() {
                Some(b'\\') => {}
                Some(d @ b'0'..=b'9') => {
                    let n = usize::from(d - b'0');
                    if n > groups {
                        return Err(RegexError(format!(
                            "substitution refers to group \\{n} but the regex has {groups} capture group(s)"
                        )));
                    }
                }
                _ => {
                    return Err(RegexError(
                        "substitution: a backslash must be followed by a digit or a backslash"
                            .into(),
                    ));
                }
            }
        }
        Ok(Self {
            regex,
            substitution,
        })
    }

    /// `input` with every match replaced; `None` when nothing matched.
    pub fn apply(&self, input: &[u8]) -> Option<Vec<u8>> {
        let re = self.regex.search();
        let mut out = Vec::new();
        let mut last = 0;
        let mut any = false;
        for caps in re.captures_iter(input) {
            let Some(m) = caps.get(0) else { continue };
            any = true;
            out.extend_from_slice(&input[last..m.start()]);
            let mut sub = self.substitution.bytes();
            while let Some(b) = sub.next() {
                if b != b'\\' {
                    out.push(b);
                    continue;
                }
                match sub.next() {
                    Some(d @ b'0'..=b'9') => {
                        if let Some(g) = caps.get(usize::from(d - b'0')) {
                            out.extend_from_slice(g.as_bytes());
                        }
                    }
                    Some(other) => out.push(other),
                    None => out.push(b'\\'),
                }
            }
            last = m.end();
        }
        if !any {
            return None;
        }
        out.extend_from_slice(&input[last..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests;
