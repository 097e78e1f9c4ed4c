//! The in-memory store of every watched object, keyed by (kind, namespace, name), and the
//! configuration it makes: valid config objects' resources, the invalid ones named and left
//! out, and the registry built from Services, EndpointSlices and Pods.
//!
//! Each change says whether it changed anything Spar reads, so a relist or a resumed watch
//! that brings back the same objects makes no new configuration.
//!
//! What it does not do: no requests, no timing (debounce is the source's), no logging of
//! its own: the caller reports what [`Change`] returns.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use spar_istio::Resource;
use spar_translate::Registry;
use spar_translate::registry::KubeEndpoints;

use crate::kinds::{KINDS, Kind};
use crate::object::{self, Decoded, Key};

/// What a change did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// Whether anything Spar reads changed.
    pub(crate) changed: bool,
    /// Objects that became invalid, with their errors (for the log and the counter).
    pub(crate) rejected: Vec<(Key, Vec<String>)>,
}

impl Change {
    fn merge(&mut self, other: Change) {
        self.changed |= other.changed;
        self.rejected.extend(other.rejected);
    }
}

struct Entry {
    value: Value,
    decoded: Decoded,
}

/// Every object, and which kinds have been listed at least once.
#[derive(Default)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Entry>,
    listed: BTreeSet<&'static str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("objects", &self.objects.len())
            .field("listed", &self.listed)
            .finish()
    }
}

/// A consistent configuration made from the store.
#[derive(Clone, Debug, Default)]
pub struct ConfigSet {
    /// Resources of every valid config object, in (kind, namespace, name) order.
    pub resources: Vec<Resource>,
    /// Services (endpoints from EndpointSlices), ServiceEntries, WorkloadEntries.
    pub registry: Registry,
    /// `k8s:KIND/NS/NAME` of every config object left out as invalid.
    pub invalid: Vec<String>,
}

impl Store {
    /// Adds or replaces one trimmed object (see [`object::trim`]).
    pub(crate) fn apply(&mut self, kind: &Kind, key: Key, value: Value) -> Change {
        if self.objects.get(&key).is_some_and(|e| e.value == value) {
            return Change::default();
        }
        let decoded = object::decode(kind.role, &key, &value);
        let rejected = match &decoded {
            Decoded::Invalid { errors } => vec![(key.clone(), errors.clone())],
            _ => Vec::new(),
        };
        self.objects.insert(key, Entry { value, decoded });
        Change {
            changed: true,
            rejected,
        }
    }

    /// Removes one object.
    pub(crate) fn delete(&mut self, key: &Key) -> Change {
        Change {
            changed: self.objects.remove(key).is_some(),
            rejected: Vec::new(),
        }
    }

    /// Replaces every object of `kind` with a fresh list (a relist), and marks it listed.
    pub(crate) fn replace(&mut self, kind: &Kind, objects: Vec<(Key, Value)>) -> Change {
        let mut change = Change {
            changed: self.listed.insert(kind.kind),
            rejected: Vec::new(),
        };
        let fresh: BTreeSet<Key> = objects.iter().map(|(k, _)| k.clone()).collect();
        let gone: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == kind.kind && !fresh.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            change.merge(self.delete(&key));
        }
        for (key, value) in objects {
            change.merge(self.apply(kind, key, value));
        }
        change
    }

    /// Whether every kind has been listed: before that, a configuration would be partial.
    pub(crate) fn synced(&self) -> bool {
        KINDS.iter().all(|k| self.listed.contains(k.kind))
    }

    /// Warnings of the valid config objects (analysis notes, unsupported fields).
    pub(crate) fn warnings(&self, key: &Key) -> &[String] {
        match self.objects.get(key).map(|e| &e.decoded) {
            Some(Decoded::Config { warnings, .. }) => warnings,
            _ => &[],
        }
    }

    /// Objects left out as invalid.
    pub(crate) fn invalid_count(&self) -> usize {
        self.objects
            .values()
            .filter(|e| matches!(e.decoded, Decoded::Invalid { .. }))
            .count()
    }

    /// The configuration the store makes now.
    pub(crate) fn build(&self) -> ConfigSet {
        let mut set = ConfigSet::default();
        let mut endpoints = KubeEndpoints::default();
        for (key, entry) in &self.objects {
            match &entry.decoded {
                Decoded::Config { resources, .. } => {
                    set.resources.extend(resources.iter().cloned())
                }
                Decoded::Invalid { .. } => set.invalid.push(object::file_name(key)),
                Decoded::Slice(slice) => endpoints.slices.push(slice.clone()),
                Decoded::Pod(labels) => {
                    endpoints
                        .pods
                        .insert((key.1.clone(), key.2.clone()), labels.clone());
                }
            }
        }
        set.registry = Registry::from_kubernetes(&set.resources, &endpoints);
        set
    }
}

#[cfg(test)]
mod tests;
