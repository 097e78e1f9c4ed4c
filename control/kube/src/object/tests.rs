use super::*;
use crate::kinds::KINDS;

fn kind(name: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.kind == name)
        .unwrap_or_else(|| panic!("no kind {name}"))
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not an object: {e}"))
}

#[test]
fn trimming_keeps_what_spar_reads_only() {
    let obj = dynamic(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "reviews", "namespace": "default", "resourceVersion": "42", "uid": "u",
            "generation": 3, "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}
        },
        "spec": {"hosts": ["reviews"]},
        "status": {"observedGeneration": 3}
    }));
    let (key, value) = trim(kind("VirtualService"), "networking.istio.io/v1", &obj);
    assert_eq!(
        key,
        ("VirtualService", "default".to_owned(), "reviews".to_owned())
    );
    assert_eq!(
        value,
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default", "annotations": {"keep": "me"}},
            "spec": {"hosts": ["reviews"]}
        })
    );
    // A list item has no apiVersion or kind: the watched kind and version supply them.
    let mut bare = obj.clone();
    bare.types = None;
    assert_eq!(
        trim(kind("VirtualService"), "networking.istio.io/v1", &bare).1,
        value
    );
}

#[test]
fn config_objects_are_validated_one_by_one_and_name_the_object() {
    let (key, value) = trim(
        kind("VirtualService"),
        "networking.istio.io/v1",
        &dynamic(json!({
            "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [
                {"destination": {"host": "reviews"}, "weight": 30, "wieght": 1}
            ]}]}
        })),
    );
    let Decoded::Invalid { errors } = decode(Role::Config, &key, &value) else {
        panic!("accepted");
    };
    assert!(
        errors
            .iter()
            .all(|e| e.contains("k8s:VirtualService/default/bad")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("wieght")), "{errors:?}");

    let (key, value) = trim(
        kind("VirtualService"),
        "networking.istio.io/v1",
        &dynamic(json!({
            "metadata": {"name": "good", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}
        })),
    );
    let Decoded::Config { resources, .. } = decode(Role::Config, &key, &value) else {
        panic!("refused");
    };
    assert_eq!(resources.len(), 1);
    assert_eq!(&*resources[0].file, "k8s:VirtualService/default/good");
}

#[test]
fn endpoint_slices_and_pods_become_registry_input() {
    let (key, value) = trim(
        kind("EndpointSlice"),
        "discovery.k8s.io/v1",
        &dynamic(json!({
            "metadata": {"name": "reviews-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "reviews"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "reviews-v1-x", "namespace": "default"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}
            ]
        })),
    );
    let Decoded::Slice(slice) = decode(Role::EndpointSlice, &key, &value) else {
        panic!("not a slice");
    };
    assert_eq!(slice.service, "reviews");
    assert_eq!(
        slice.ports,
        [SlicePort {
            name: "http".into(),
            port: 9080
        }]
    );
    let eps: Vec<(&str, bool, Option<&str>)> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].as_str(), e.ready, e.pod.as_deref()))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.0.0.1", true, Some("reviews-v1-x")),
            ("10.0.0.2", false, None),
            ("10.0.0.3", true, None)
        ]
    );

    let (key, value) = trim(
        kind("Pod"),
        "v1",
        &dynamic(json!({
            "metadata": {"name": "reviews-v1-x", "namespace": "default", "labels": {"version": "v1"}},
            "spec": {"containers": []}, "status": {"podIP": "10.0.0.1"}
        })),
    );
    assert_eq!(value.get("spec"), None, "a Pod keeps its metadata only");
    let Decoded::Pod(labels) = decode(Role::Pod, &key, &value) else {
        panic!("not a pod");
    };
    assert_eq!(labels.get("version").map(String::as_str), Some("v1"));
}
