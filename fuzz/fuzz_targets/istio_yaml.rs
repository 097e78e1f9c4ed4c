//! Arbitrary text through the Istio YAML loader, validation and cross-resource analysis:
//! none may panic, whatever the input. Messages are formatted too, as sparctl prints them.
//! The per-document path of spar-control's reload (`split`, then `load_part` on each
//! document) must find what a whole-file load finds, whenever it is taken (no document
//! with a syntax error): the same resources and the same messages.
#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use spar_istio::{Options, Start, analyze, codes, load, load_part, split};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let options = Options::default();
    let loaded = load("fuzz.yaml", text, &options);
    let mut sink = String::new();
    for m in loaded.messages.iter().chain(&analyze(&loaded.resources)) {
        let _ = write!(sink, "{m}");
    }
    let Some(parts) = split(text) else { return };
    let (mut resources, mut messages) = (Vec::new(), Vec::new());
    let mut index = 0;
    for (line, part) in parts {
        let (one, next) = load_part("fuzz.yaml", part, Start { line, index }, &options);
        if one.messages.iter().any(|m| m.code == codes::YAML_SYNTAX) {
            return; // the reload reads such a file whole
        }
        index = next;
        resources.extend(one.resources);
        messages.extend(one.messages);
    }
    assert!(resources == loaded.resources, "documents load apart as they load together");
    // The same messages; their lines may differ where the parser places a mark by what
    // follows a document (an empty block scalar ending the document: the whole file sees
    // the next `---`, the document alone its end).
    let unlined = |ms: &[spar_istio::Message]| -> Vec<(String, String, String)> {
        ms.iter()
            .map(|m| (m.code.id.to_owned(), m.path.clone(), m.text.clone()))
            .collect()
    };
    assert_eq!(unlined(&messages), unlined(&loaded.messages), "with the same messages");
});
