//! Arbitrary patterns through `SafeRegex::new`: a hostile pattern (huge repetitions, deep
//! nesting, long text) must be refused quickly, never panic or blow up memory or time; one
//! that compiles must match and substitute in time linear in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spar_route::{RegexRewrite, SafeRegex};

fuzz_target!(|data: &[u8]| {
    // Pattern, then an optional substitution after the first NUL.
    let (pattern, substitution) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(pattern) = std::str::from_utf8(pattern) else { return };
    let Ok(re) = SafeRegex::new(pattern) else { return };
    assert_eq!(re.pattern(), pattern);
    let input: Vec<u8> = pattern.bytes().cycle().take(4096).collect();
    let _ = re.is_full_match(&input);
    let _ = re.is_full_match(b"");
    let Ok(substitution) = std::str::from_utf8(substitution) else { return };
    if let Ok(rr) = RegexRewrite::new(re, substitution.to_owned()) {
        let _ = rr.apply(&input);
        let _ = rr.apply(b"/a/b?c=d");
    }
});
