//! Arbitrary text through the Istio YAML loader, validation and cross-resource analysis:
//! none may panic, whatever the input. Messages are formatted too, as sparctl prints them.
//! The per-document path of spar-control's reload (`split`, then `load_part` on each
//! document) must find what a whole-file load finds, whenever it is taken (no document
//! with a load error): the same resources and the same messages, at the same lines.
#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use spar_istio::{Level, Options, Start, analyze, codes, load, load_part, split};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let options = Options::default();
    let loaded = load("fuzz.yaml", text, &options);
    let mut sink = String::new();
    for m in loaded.messages.iter().chain(&analyze(&loaded.resources)) {
        let _ = write!(sink, "{m}");
    }
    // spar-control's reload reads a file by documents only while no document has a load
    // error (syntax, not a mapping, no kind); then it must find what a whole-file read
    // finds. Text the whole-file read refuses for its syntax is left out: there the parser
    // can fail on the whole where each document alone parses.
    let load_error = |ms: &[spar_istio::Message]| ms.iter().any(|m| m.level == Level::Error);
    if loaded.messages.iter().any(|m| m.code == codes::YAML_SYNTAX) {
        return;
    }
    let Some(parts) = split(text) else { return };
    let (mut resources, mut messages) = (Vec::new(), Vec::new());
    let mut index = 0;
    for (line, part) in parts {
        let (one, next) = load_part("fuzz.yaml", part, Start { line, index }, &options);
        if load_error(&one.messages) {
            return; // the reload reads such a file whole
        }
        index = next;
        resources.extend(one.resources);
        messages.extend(one.messages);
    }
    assert!(resources == loaded.resources, "documents load apart as they load together");
    assert_eq!(messages, loaded.messages, "with the same messages at the same lines");
});
