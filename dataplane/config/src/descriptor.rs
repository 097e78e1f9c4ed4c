//! The Envoy descriptor pool, compiled from envoy-types' `.proto` files by `build.rs`.

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::error::{ConfigError, FieldPath};

/// `FileDescriptorSet` of the bootstrap, HCM, router, tcp_proxy and upstream HTTP protocol
/// options protos and everything they import.
static DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor_set.bin"));

/// Full name of the root message of a bootstrap file.
pub(crate) const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// The pool, decoded for each load (a few milliseconds) and dropped with the
/// last descriptor taken from it: a proxy between reloads does not keep the
/// decoded descriptors (about 2 MB of heap) around. See the idle RSS figure
/// in the README.
pub(crate) fn pool() -> Result<DescriptorPool, ConfigError> {
    DescriptorPool::decode(DESCRIPTOR_SET)
        .map_err(|e| internal(format!("embedded Envoy descriptors do not decode: {e}")))
}

/// The descriptor of message `name`.
pub(crate) fn message(name: &str) -> Result<MessageDescriptor, ConfigError> {
    pool()?.get_message_by_name(name).ok_or_else(|| {
        internal(format!(
            "message {name} is missing from the embedded descriptors"
        ))
    })
}

/// An error that is Spar's fault, not the config's.
pub(crate) fn internal(message: String) -> ConfigError {
    ConfigError {
        file: None,
        line: None,
        path: FieldPath::root(),
        message,
    }
}
