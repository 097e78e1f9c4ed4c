//! Arbitrary text through the Istio YAML loader, validation and cross-resource analysis:
//! none may panic, whatever the input. Messages are formatted too, as sparctl prints them.
#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use spar_istio::{Options, analyze, load};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = load("fuzz.yaml", text, &Options::default());
    let mut sink = String::new();
    for m in loaded.messages.iter().chain(&analyze(&loaded.resources)) {
        let _ = write!(sink, "{m}");
    }
});
