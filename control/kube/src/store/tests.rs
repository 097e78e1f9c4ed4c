use super::*;
use crate::object::trim;
use kube::api::DynamicObject;
use serde_json::json;

fn kind(name: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.kind == name)
        .unwrap_or_else(|| panic!("no kind {name}"))
}

fn object(kind_name: &str, v: Value) -> (Key, Value) {
    let k = kind(kind_name);
    let o: DynamicObject = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
    trim(k, &k.api_version(k.versions[0]), &o)
}

fn vs(name: &str, host: &str, rv: &str) -> (Key, Value) {
    object(
        "VirtualService",
        json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
               "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]}}),
    )
}

fn list_all_empty(store: &mut Store) {
    for k in KINDS {
        store.replace(k, Vec::new());
    }
}

#[test]
fn synced_only_after_every_kind_is_listed() {
    let mut store = Store::default();
    assert!(!store.synced());
    for k in &KINDS[1..] {
        assert!(
            store.replace(k, Vec::new()).changed,
            "a first list is a change"
        );
    }
    assert!(!store.synced());
    store.replace(&KINDS[0], Vec::new());
    assert!(store.synced());
    assert!(
        !store.replace(&KINDS[0], Vec::new()).changed,
        "an empty relist is not"
    );
}

#[test]
fn same_content_is_no_change_and_relists_reconcile() {
    let mut store = Store::default();
    list_all_empty(&mut store);
    let k = kind("VirtualService");
    let (key, value) = vs("a", "reviews", "1");
    assert!(store.apply(k, key.clone(), value).changed);
    // A new resourceVersion (a status update) with the same spec: nothing Spar reads moved.
    let (key2, value2) = vs("a", "reviews", "2");
    assert!(!store.apply(k, key2, value2).changed);
    // A relist with the same objects changes nothing; one without `a` deletes it.
    assert!(!store.replace(k, vec![vs("a", "reviews", "3")]).changed);
    let change = store.replace(k, vec![vs("b", "ratings", "4")]);
    assert!(change.changed);
    let set = store.build();
    let names: Vec<&str> = set.resources.iter().map(|r| r.meta.name.as_str()).collect();
    assert_eq!(names, ["b"]);
    assert!(!store.delete(&key).changed, "already gone");
}

#[test]
fn invalid_objects_are_left_out_and_named() {
    let mut store = Store::default();
    list_all_empty(&mut store);
    let k = kind("VirtualService");
    let (key, value) = vs("good", "reviews", "1");
    store.apply(k, key, value);
    let (key, value) = object(
        "VirtualService",
        json!({"metadata": {"name": "bad", "namespace": "default"},
               "spec": {"hosts": ["reviews"], "tcp": "not a list"}}),
    );
    let change = store.apply(k, key.clone(), value);
    assert!(change.changed);
    assert_eq!(change.rejected.len(), 1);
    assert_eq!(change.rejected[0].0, key);
    assert_eq!(store.invalid_count(), 1);
    let set = store.build();
    assert_eq!(set.invalid, ["k8s:VirtualService/default/bad"]);
    let names: Vec<&str> = set.resources.iter().map(|r| r.meta.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    // Fixing it brings it in.
    let (key, value) = vs("bad", "reviews", "2");
    assert!(store.apply(k, key, value).rejected.is_empty());
    assert_eq!(store.invalid_count(), 0);
}

#[test]
fn registry_from_services_slices_and_pods() {
    let mut store = Store::default();
    list_all_empty(&mut store);
    let objects = [
        object(
            "Service",
            json!({"metadata": {"name": "reviews", "namespace": "default"},
                   "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}),
        ),
        object(
            "EndpointSlice",
            json!({"metadata": {"name": "reviews-1", "namespace": "default",
                                "labels": {"kubernetes.io/service-name": "reviews"}},
                   "addressType": "IPv4",
                   "ports": [{"name": "http", "port": 8080}],
                   "endpoints": [{"addresses": ["10.0.0.1"],
                                  "targetRef": {"kind": "Pod", "name": "r1"}}]}),
        ),
        object(
            "Pod",
            json!({"metadata": {"name": "r1", "namespace": "default", "labels": {"version": "v1"}}}),
        ),
    ];
    for (key, value) in objects {
        let k = kind(key.0);
        store.apply(k, key, value);
    }
    let set = store.build();
    let Some(svc) = set
        .registry
        .service("reviews.default.svc.cluster.local", "default")
    else {
        panic!("no service: {:?}", set.registry.services());
    };
    assert_eq!(svc.instances.len(), 1);
    assert_eq!(svc.instances[0].ip, "10.0.0.1");
    assert_eq!(svc.instances[0].ports[&9080], 8080);
    assert_eq!(svc.instances[0].labels["version"], "v1");
}
