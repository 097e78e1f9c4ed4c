//! Conformance over the shared Istio corpus (`../shared/corpus/istio` from the repository
//! root): every valid document is accepted, every invalid one is rejected for the reason
//! Istio gives (same field, same cause; our wording differs, so the table below maps each
//! expected error to our field path and message).

#![allow(clippy::expect_used)] // a test: a malformed corpus should stop it loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use spar_istio::{Level, Message, Options, analyze, load};

/// The corpus: `$SPAR_ISTIO_CORPUS`, else `../shared/corpus/istio` beside the repository.
/// It is not part of the repository (it is Istio's text, not ours): where it is absent the
/// conformance tests say so on stderr and pass vacuously, unless `SPAR_REQUIRE_CORPUS=1`
/// (set by `cargo xtask test` whenever the shared folder exists).
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SPAR_ISTIO_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/istio")
        });
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("SPAR_REQUIRE_CORPUS").is_none(),
        "the Istio corpus is missing at {}",
        dir.display()
    );
    eprintln!(
        "SKIPPED: no Istio corpus at {} (set SPAR_ISTIO_CORPUS)",
        dir.display()
    );
    None
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// MANIFEST.tsv rows: (path, doc_index) -> (kind, expect).
fn manifest(dir: &Path) -> BTreeMap<(String, usize), (String, String)> {
    read(&dir.join("MANIFEST.tsv"))
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let index = cols[1].parse().expect("doc_index");
            (
                (cols[0].to_owned(), index),
                (cols[3].to_owned(), cols[6].to_owned()),
            )
        })
        .collect()
}

/// Loads and analyzes one file alone; returns the resources' (doc index, kind) and messages.
fn analyze_file(name: &str, text: &str) -> (Vec<(usize, String)>, Vec<Message>) {
    let loaded = load(name, text, &Options::default());
    let mut messages = loaded.messages;
    messages.extend(analyze(&loaded.resources));
    let docs = loaded
        .resources
        .iter()
        .map(|r| (r.doc_index, r.kind.clone()))
        .collect();
    (docs, messages)
}

#[test]
fn every_valid_document_is_accepted() {
    let Some(dir) = corpus() else { return };
    let manifest = manifest(&dir);
    let files: BTreeSet<&String> = manifest.keys().map(|(p, _)| p).collect();
    let (mut accepted, mut total) = (0, 0);
    let mut failures = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with("invalid/")) {
        let (docs, messages) = analyze_file(file, &read(&dir.join(file)));
        let errors: Vec<&Message> = messages
            .iter()
            .filter(|m| m.level == Level::Error)
            .collect();
        for ((path, index), (kind, expect)) in
            manifest.range(((*file).clone(), 0)..((*file).clone(), usize::MAX))
        {
            debug_assert_eq!(path, *file);
            let doc_errors: Vec<String> = errors
                .iter()
                .filter(|m| {
                    docs.iter().any(|(i, kind)| {
                        i == index && m.resource.as_ref().is_some_and(|r| &r.kind == kind)
                    }) || m.resource.is_none()
                })
                .map(|m| m.to_string())
                .collect();
            // Every Istio document, and the Kubernetes kinds Spar reads, must be loaded at the
            // index MANIFEST gives; other Kubernetes kinds are skipped.
            let read_by_spar = !matches!(kind.as_str(), "ServiceAccount" | "Secret");
            assert_eq!(
                docs.iter().any(|(i, k)| i == index && k == kind),
                read_by_spar,
                "{path}#{index} ({kind}) loaded: {docs:?}"
            );
            match expect.as_str() {
                "valid" | "valid-doc-example" | "k8s-companion" => {
                    total += 1;
                    if doc_errors.is_empty() {
                        accepted += 1;
                    } else {
                        failures.push(format!("{path}#{index}: {doc_errors:#?}"));
                    }
                }
                // The example writes the proto name `prefix_rewrite`; the CRD (and so the API
                // server's strict decoding, and Spar) know only `prefixRewrite`.
                "doc-example-schema-mismatch" => assert!(
                    doc_errors
                        .iter()
                        .any(|e| e.contains("unknown field \"prefix_rewrite\"")),
                    "{path}#{index} should be refused for prefix_rewrite: {doc_errors:#?}"
                ),
                other => panic!("unexpected expect value {other:?}"),
            }
        }
    }
    eprintln!("valid documents accepted: {accepted}/{total}");
    assert!(
        failures.is_empty(),
        "{} rejected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        total, 217,
        "MANIFEST lists 64 + 111 valid documents and 42 Kubernetes ones"
    );
}

/// Each invalid document: Istio's expected error substring (EXPECTED.tsv) -> the field path
/// and a substring of the message Spar gives.
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "authz/doc00-service-account-and-namespace.yaml",
        "Cannot set serviceAccounts with namespaces or principals",
        "spec.rules[0].from[0].source",
        "Cannot set serviceAccounts with namespaces or principals",
    ),
    (
        "destinationrule/doc00-bookinfo-ratings.yaml",
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent: Invalid value",
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
        "Invalid value: 150",
    ),
    (
        "destinationrule/doc02-bookinfo-ratings.yaml",
        "spec.trafficPolicy.loadBalancer.warmup.aggression: Invalid value",
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
        "Invalid value: -0.1",
    ),
    (
        "peerauth/doc00-bad-mode.yaml",
        "Unsupported value: \"BLAH\"",
        "spec.mtls.mode",
        "Unsupported value: \"BLAH\"",
    ),
    (
        "peerauth/doc02-port-level-global.yaml",
        "portLevelMtls requires selector",
        "spec.portLevelMtls",
        "portLevelMtls requires selector",
    ),
    (
        "peerauth/doc04-zero-port.yaml",
        "port must be between 1-65535",
        "spec.portLevelMtls.0",
        "port must be between 1-65535",
    ),
    (
        "reqauth/doc00-multi-refs.yaml",
        "only one of targetRefs or selector can be set",
        "spec",
        "only one of targetRefs or selector can be set",
    ),
    (
        "reqauth/doc02-bad-target-name.yaml",
        "spec.targetRef.name: Required value",
        "spec.targetRef.name",
        "Required value",
    ),
    (
        "reqauth/doc04-bad-target-group.yaml",
        "spec.targetRef.group in body should match",
        "spec.targetRef.group",
        "spec.targetRef.group in body should match",
    ),
    (
        "reqauth/doc06-no-issuer.yaml",
        "spec.jwtRules[0] in body must be of type object",
        "spec.jwtRules[0]",
        "invalid type: null, expected an object",
    ),
    (
        "reqauth/doc08-invalid-jwks.yaml",
        "url must have scheme",
        "spec.jwtRules[0].jwksUri",
        "url must have scheme",
    ),
    (
        "reqauth/doc10-invalid-from-headers-empty-name.yaml",
        "spec.jwtRules[0].fromHeaders[0].name in body should be at least 1 chars long",
        "spec.jwtRules[0].fromHeaders[0].name",
        "spec.jwtRules[0].fromHeaders[0].name in body should be at least 1 chars long",
    ),
    (
        "reqauth/doc12-invalid-from-cookies.yaml",
        "fromCookies[0] in body should be at least 1 chars long",
        "spec.jwtRules[0].fromCookies[0]",
        "fromCookies[0] in body should be at least 1 chars long",
    ),
    (
        "reqauth/doc14-invalid-claim-to-header-claim-empty.yaml",
        "spec.jwtRules[0].outputClaimToHeaders[0].claim in body should be at least 1 chars long",
        "spec.jwtRules[0].outputClaimToHeaders[0].claim",
        "spec.jwtRules[0].outputClaimToHeaders[0].claim in body should be at least 1 chars long",
    ),
    (
        "reqauth/doc16-invalid-claim-to-header-bad-header.yaml",
        "header in body should match",
        "spec.jwtRules[0].outputClaimToHeaders[0].header",
        "header in body should match",
    ),
    (
        "reqauth/doc18-invalid-space-delimited-claims.yaml",
        "spaceDelimitedClaims[0] in body should be at least 1 chars long",
        "spec.jwtRules[0].spaceDelimitedClaims[0]",
        "spaceDelimitedClaims[0] in body should be at least 1 chars long",
    ),
    (
        "serviceentry/doc00-no-spec.yaml",
        "spec: Required value",
        "spec",
        "Required value",
    ),
    (
        "serviceentry/doc02-bad-selector-value.yaml",
        "wildcard is not supported in selector",
        "spec.workloadSelector.labels.val",
        "wildcard is not supported in selector",
    ),
    (
        "serviceentry/doc04-bad-host-wildcard.yaml",
        "hostname cannot be wildcard",
        "spec.hosts[0]",
        "hostname cannot be wildcard",
    ),
    (
        "serviceentry/doc06-duplicate-ports-name.yaml",
        "Duplicate value",
        "spec.ports[1].name",
        "Duplicate value: \"a\"",
    ),
    (
        "serviceentry/doc08-bad-port.yaml",
        "port must be between 1-65535",
        "spec.ports[0].number",
        "port must be between 1-65535",
    ),
    (
        "serviceentry/doc10-none-with-endpoints.yaml",
        "NONE mode cannot set endpoints",
        "spec.endpoints",
        "NONE mode cannot set endpoints",
    ),
    (
        "telemetry/doc00-bad-provider.yaml",
        "name in body should be at least 1 chars long",
        "spec.metrics[0].providers[0].name",
        "name in body should be at least 1 chars long",
    ),
    (
        "telemetry/doc02-bad-tag-upsert.yaml",
        "value must be set when operation is UPSERT",
        "spec.metrics[0].overrides[0].tagOverrides.foo",
        "value must be set when operation is UPSERT",
    ),
    (
        "workloadentry/doc00-no-spec.yaml",
        "spec: Required value",
        "spec",
        "Required value",
    ),
    (
        "workloadentry/doc02-bad-uds-dir.yaml",
        "UDS may not be a dir",
        "spec.address",
        "UDS may not be a dir",
    ),
    (
        "workloadentry/doc04-uds-with-ports.yaml",
        "UDS may not include ports",
        "spec.ports",
        "UDS may not include ports",
    ),
    (
        "workloadentry/doc06-bad-port-name.yaml",
        "spec.ports: Invalid value",
        "spec.ports",
        "Invalid value: port name must be valid",
    ),
    (
        "workloadgroup/doc00-no-spec.yaml",
        "spec: Required value",
        "spec",
        "Required value",
    ),
    (
        "workloadgroup/doc02-http-probe-invalid.yaml",
        "spec.probe.httpGet.httpHeaders[0].name in body should match",
        "spec.probe.httpGet.httpHeaders[0].name",
        "spec.probe.httpGet.httpHeaders[0].name in body should match",
    ),
];

#[test]
fn every_invalid_document_is_rejected_for_the_expected_reason() {
    let Some(dir) = corpus().map(|d| d.join("invalid")) else {
        return;
    };
    let expected: BTreeMap<String, String> = read(&dir.join("EXPECTED.tsv"))
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols[0].to_owned(), cols[3].to_owned())
        })
        .collect();
    let table: BTreeMap<String, String> = INVALID
        .iter()
        .map(|(f, e, _, _)| ((*f).to_owned(), (*e).to_owned()))
        .collect();
    assert_eq!(
        table, expected,
        "the table must list every EXPECTED.tsv row, with its substring"
    );

    let mut failures = Vec::new();
    for (file, _, path, text) in INVALID {
        // The `_err` key belongs to Istio's test harness, not to the document.
        let yaml: String = read(&dir.join(file))
            .lines()
            .filter(|l| !l.starts_with("_err:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (_, messages) = analyze_file(file, &yaml);
        let hit = messages
            .iter()
            .any(|m| m.level == Level::Error && m.path == *path && m.text.contains(text));
        if !hit {
            let got: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
            failures.push(format!(
                "{file}: want error at {path} containing {text:?}; got {got:#?}"
            ));
        }
    }
    eprintln!(
        "invalid documents rejected for the expected reason: {}/{}",
        INVALID.len() - failures.len(),
        INVALID.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A cheap stand-in for the fuzz target that runs on every test run: every corpus file cut
/// short at many points, and with bytes replaced, goes through load and analysis.
#[test]
fn damaged_corpus_documents_never_panic() {
    let Some(dir) = corpus() else { return };
    let manifest = manifest(&dir);
    let files: BTreeSet<&String> = manifest.keys().map(|(p, _)| p).collect();
    let mut runs = 0;
    for file in files {
        let text = read(&dir.join(file));
        let cuts = (0..text.len())
            .step_by(31)
            .filter(|i| text.is_char_boundary(*i));
        for cut in cuts {
            let head = &text[..cut];
            let loaded = load(file, head, &Options::default());
            let _ = analyze(&loaded.resources);
            for junk in ["\n- ", ": ", "{", "*x", "\t", "\""] {
                let mangled = format!("{head}{junk}{}", &text[cut..]);
                let loaded = load(file, &mangled, &Options::default());
                let _ = analyze(&loaded.resources);
                runs += 1;
            }
        }
    }
    assert!(runs > 3_000, "{runs} mangled documents");
}
