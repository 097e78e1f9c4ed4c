use spar_istio::{Level, Message, Options, Resource};

use super::Loader;

/// Two services with their Deployments, a VirtualService routing to a host no one defines
/// (a cross-resource warning) and one with a rule after a catch-all (another).
const SERVICES: &str = "\
# services
---
apiVersion: v1
kind: Service
metadata: { name: a, namespace: ns }
spec:
  selector: { app: a }
  ports: [{ name: http, port: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: a
  namespace: ns
  annotations: { spar.dev/endpoints: \"10.0.0.1:8080\" }
spec:
  template:
    metadata: { labels: { app: a } }
---
apiVersion: v1
kind: Service
metadata: { name: b, namespace: ns }
spec:
  selector: { app: b }
  ports: [{ name: http, port: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: b
  namespace: ns
  annotations: { spar.dev/endpoints: \"10.0.0.2:8080\" }
spec:
  template:
    metadata: { labels: { app: b } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: missing, namespace: ns }
spec:
  hosts: [a]
  http:
  - route:
    - destination: { host: nowhere }
  - route:
    - destination: { host: b }
";

const SIDECARS: &str = "\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: ns }
spec:
  egress: [{ hosts: [\"./*\"] }]
";

fn texts(services: &str) -> Vec<(String, String)> {
    vec![
        ("services.yaml".to_owned(), services.to_owned()),
        ("sidecars.yaml".to_owned(), SIDECARS.to_owned()),
    ]
}

/// What loading each file whole and analyzing them together gives.
fn whole(texts: &[(String, String)]) -> (Vec<Resource>, Vec<Message>) {
    let mut resources = Vec::new();
    let mut messages = Vec::new();
    for (name, text) in texts {
        let loaded = spar_istio::load(name, text, &Options::default());
        resources.extend(loaded.resources);
        messages.extend(loaded.messages);
    }
    messages.extend(spar_istio::analyze(&resources));
    (resources, messages)
}

/// Loads `before` then `after` with one loader; checks that the second load gives exactly
/// what a fresh loader and a whole-file load give, and returns the parts it parsed.
fn reload(before: &str, after: &str) -> usize {
    let mut loader = Loader::default();
    let first = loader.read(texts(before));
    assert_eq!(first, whole(&texts(before)), "first load");
    let again = loader.read(texts(after));
    let parsed = loader.parsed;
    assert_eq!(again, whole(&texts(after)), "reload against whole files");
    assert_eq!(
        again,
        Loader::default().read(texts(after)),
        "reload against fresh"
    );
    parsed
}

fn lines(messages: &[Message]) -> Vec<(Level, &str, Option<usize>)> {
    messages
        .iter()
        .map(|m| (m.level, m.code.id, m.line))
        .collect()
}

#[test]
fn the_fixture_has_messages_with_lines() {
    let (resources, messages) = Loader::default().read(texts(SERVICES));
    assert_eq!(resources.len(), 6);
    assert_eq!(
        lines(&messages),
        [
            (Level::Warning, "IST0130", Some(45)),
            (Level::Warning, "IST0101", Some(44)),
        ]
    );
}

#[test]
fn an_endpoint_change_parses_one_document() {
    let after = SERVICES.replace("10.0.0.1:8080", "10.0.0.9:8080");
    assert_eq!(reload(SERVICES, &after), 1);
}

#[test]
fn an_unchanged_reload_parses_nothing() {
    assert_eq!(reload(SERVICES, SERVICES), 0);
}

#[test]
fn documents_after_a_longer_one_keep_their_lines() {
    let after = SERVICES.replace(
        "  ports: [{ name: http, port: 8080 }]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n",
        "  ports:\n  - name: http\n    port: 8080\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n",
    );
    assert_ne!(after, SERVICES);
    // The edited Service and the four documents after it, which start lower.
    assert_eq!(reload(SERVICES, &after), 5);
    let (_, messages) = Loader::default().read(texts(&after));
    assert_eq!(
        lines(&messages),
        [
            (Level::Warning, "IST0130", Some(47)),
            (Level::Warning, "IST0101", Some(46)),
        ]
    );
}

#[test]
fn inserted_and_removed_documents_renumber_the_rest() {
    let extra = "---\napiVersion: v1\nkind: Namespace\nmetadata: { name: ns }\n";
    let inserted = SERVICES.replacen("---\n", &format!("{extra}---\n"), 1);
    reload(SERVICES, &inserted);
    reload(&inserted, SERVICES);
}

#[test]
fn errors_keep_their_lines_in_reused_and_parsed_documents() {
    // A schema error in the last document, then an edit before it that adds a line.
    let broken = SERVICES.replace("  hosts: [a]\n", "  hosts: [a]\n  bogus: 1\n");
    let edited = broken.replace(
        "metadata: { name: b, namespace: ns }\n",
        "metadata:\n  name: b\n  namespace: ns\n",
    );
    reload(SERVICES, &broken);
    reload(&broken, &edited);
    let (_, messages) = Loader::default().read(texts(&edited));
    assert!(
        messages
            .iter()
            .any(|m| m.level == Level::Error && m.line == Some(44) && m.path == "spec.bogus"),
        "{messages:#?}"
    );
}

#[test]
fn a_syntax_error_reads_the_file_whole() {
    let broken = SERVICES.replace("hosts: [a]", "hosts: [a");
    reload(SERVICES, &broken);
    reload(&broken, SERVICES);
    // The error in the first document: the documents after it are not read.
    let early = SERVICES.replace("selector: { app: a }", "selector: { app: a");
    reload(SERVICES, &early);
    let (resources, _) = Loader::default().read(texts(&early));
    assert_eq!(resources.len(), 1, "only the sidecar");
}

#[test]
fn directives_end_markers_and_empty_documents() {
    let cases = [
        format!("%YAML 1.2\n{SERVICES}"),
        SERVICES.replacen("---\n", "...\n---\n", 2),
        format!("{SERVICES}---\n---\n# end\n"),
        SERVICES.trim_start_matches("# services\n").to_owned(),
        SERVICES.replace("---\n", "--- \n"),
        SERVICES.replace('\n', "\r\n"),
    ];
    for case in &cases {
        reload(SERVICES, case);
        reload(case, SERVICES);
    }
}

#[test]
fn a_reload_gives_the_registry_of_a_fresh_load() {
    let after = SERVICES.replace("10.0.0.1:8080", "10.0.0.9:8080");
    let mut loader = Loader::default();
    loader.load_texts(texts(SERVICES)).expect("loads");
    let again = loader.load_texts(texts(&after)).expect("reloads");
    let fresh = Loader::default().load_texts(texts(&after)).expect("loads");
    assert_eq!(again.resources, fresh.resources);
    assert_eq!(again.registry, fresh.registry);
    let addresses: Vec<String> = again
        .registry
        .services()
        .iter()
        .flat_map(|s| s.instances.iter().map(|i| i.ip.clone()))
        .collect();
    assert!(addresses.contains(&"10.0.0.9".to_owned()), "{addresses:?}");
}
