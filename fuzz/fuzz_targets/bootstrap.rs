//! Arbitrary text through the bootstrap loader (YAML) and, when it loads, through compile:
//! neither may panic, whatever the input. Errors are formatted too, since that is what a
//! user sees.
#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use spar_config::{Format, compile, load_bootstrap_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut sink = String::new();
    match load_bootstrap_str(text, "fuzz.yaml", Format::Yaml) {
        Ok(bootstrap) => {
            if let Err(e) = compile(&bootstrap, 1) {
                let _ = write!(sink, "{e}");
            }
        }
        Err(e) => {
            let _ = write!(sink, "{e}");
        }
    }
});
