//! The kinds spar-kube watches, and which version of each it watches: one version per kind,
//! chosen from what the API server says it serves (`GET /apis`), `v1` where it is served,
//! else the group's preferred version, else the newest Spar reads.
//!
//! What it does not do: no requests (the caller passes the server's group list), no
//! per-kind discovery (Istio serves every kind of a group in every version of the group).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;

/// What a watched kind feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Validated by spar-istio and translated (Istio kinds, Service, Namespace).
    Config,
    /// Endpoints of Services.
    EndpointSlice,
    /// Labels of the endpoints (DestinationRule subsets).
    Pod,
}

/// One watched kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// Versions Spar reads, most preferred first.
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub role: Role,
}

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";
const NETWORKING_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];

const fn istio(
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        versions,
        kind,
        plural,
        role: Role::Config,
    }
}

/// Every watched kind.
pub const KINDS: &[Kind] = &[
    istio(
        NETWORKING,
        NETWORKING_VERSIONS,
        "VirtualService",
        "virtualservices",
    ),
    istio(
        NETWORKING,
        NETWORKING_VERSIONS,
        "DestinationRule",
        "destinationrules",
    ),
    istio(NETWORKING, NETWORKING_VERSIONS, "Gateway", "gateways"),
    istio(
        NETWORKING,
        NETWORKING_VERSIONS,
        "ServiceEntry",
        "serviceentries",
    ),
    istio(NETWORKING, NETWORKING_VERSIONS, "Sidecar", "sidecars"),
    istio(
        NETWORKING,
        NETWORKING_VERSIONS,
        "WorkloadEntry",
        "workloadentries",
    ),
    istio(
        SECURITY,
        SECURITY_VERSIONS,
        "PeerAuthentication",
        "peerauthentications",
    ),
    istio(
        SECURITY,
        SECURITY_VERSIONS,
        "AuthorizationPolicy",
        "authorizationpolicies",
    ),
    istio(
        SECURITY,
        SECURITY_VERSIONS,
        "RequestAuthentication",
        "requestauthentications",
    ),
    Kind {
        group: "",
        versions: &["v1"],
        kind: "Service",
        plural: "services",
        role: Role::Config,
    },
    Kind {
        group: "",
        versions: &["v1"],
        kind: "Namespace",
        plural: "namespaces",
        role: Role::Config,
    },
    Kind {
        group: "discovery.k8s.io",
        versions: &["v1"],
        kind: "EndpointSlice",
        plural: "endpointslices",
        role: Role::EndpointSlice,
    },
    Kind {
        group: "",
        versions: &["v1"],
        kind: "Pod",
        plural: "pods",
        role: Role::Pod,
    },
];

impl Kind {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }
}

/// The version to watch per API group: `overrides` (group -> version) first, then `v1` when
/// served, the server's preferred version when Spar reads it, the newest served version Spar
/// reads, and finally Spar's first choice when the group is not served at all (its CRDs are
/// not installed yet: the watch then finds nothing until they are).
pub fn choose_versions(
    served: Option<&APIGroupList>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for kind in KINDS {
        if out.contains_key(kind.group) {
            continue;
        }
        let chosen = overrides.get(kind.group).cloned().unwrap_or_else(|| {
            let group = served.and_then(|list| list.groups.iter().find(|g| g.name == kind.group));
            let Some(group) = group else {
                return kind.versions[0].to_owned();
            };
            let offered: Vec<&str> = group.versions.iter().map(|v| v.version.as_str()).collect();
            let preferred = group.preferred_version.as_ref().map(|p| p.version.as_str());
            let readable = |v: &str| kind.versions.contains(&v);
            if offered.contains(&"v1") && readable("v1") {
                return "v1".to_owned();
            }
            if let Some(p) = preferred.filter(|p| readable(p)) {
                return p.to_owned();
            }
            kind.versions
                .iter()
                .find(|v| offered.contains(v))
                .unwrap_or(&kind.versions[0])
                .to_string()
        });
        out.insert(kind.group, chosen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, GroupVersionForDiscovery};

    fn group(name: &str, versions: &[&str], preferred: &str) -> APIGroup {
        let gv = |v: &str| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.to_owned(),
        };
        APIGroup {
            name: name.to_owned(),
            versions: versions.iter().map(|v| gv(v)).collect(),
            preferred_version: Some(gv(preferred)),
            server_address_by_client_cidrs: None,
        }
    }

    #[test]
    fn v1_first_then_preferred_then_newest_readable() {
        let list = APIGroupList {
            groups: vec![
                group(NETWORKING, &["v1alpha3", "v1beta1"], "v1beta1"),
                group(SECURITY, &["v1beta1", "v1", "v2"], "v2"),
                group("discovery.k8s.io", &["v1"], "v1"),
            ],
        };
        let chosen = choose_versions(Some(&list), &BTreeMap::new());
        assert_eq!(chosen[NETWORKING], "v1beta1");
        assert_eq!(chosen[SECURITY], "v1");
        assert_eq!(chosen["discovery.k8s.io"], "v1");
        assert_eq!(chosen[""], "v1");

        let list = APIGroupList {
            groups: vec![group(NETWORKING, &["v1alpha3", "v1beta1"], "v2")],
        };
        let chosen = choose_versions(Some(&list), &BTreeMap::new());
        assert_eq!(chosen[NETWORKING], "v1beta1", "newest readable served");
        assert_eq!(chosen[SECURITY], "v1", "not served: first choice");
    }

    #[test]
    fn overrides_win_and_no_discovery_means_first_choices() {
        let overrides = [(NETWORKING.to_owned(), "v1alpha3".to_owned())].into();
        let chosen = choose_versions(None, &overrides);
        assert_eq!(chosen[NETWORKING], "v1alpha3");
        assert_eq!(chosen[SECURITY], "v1");
    }
}
