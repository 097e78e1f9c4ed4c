//! Compiles the Envoy `.proto` files that ship inside the envoy-types crate into one
//! `FileDescriptorSet` (`$OUT_DIR/envoy_descriptor_set.bin`), which the crate embeds with
//! `include_bytes!` and decodes at run time with prost-reflect.
//!
//! envoy-types' folder is found with `cargo metadata` (the registry path is never assumed);
//! `SPAR_ENVOY_PROTO_DIR` overrides it (point it at envoy-types' `proto/` folder).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Roots of the descriptor set; protox adds every file they import.
/// Add a file here when the subset check learns a new `typed_config` type.
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
];

/// Folders under envoy-types' `proto/` that hold import roots (as `protoc -I`).
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "googleapis",
    "protoc-gen-validate",
    "cel-spec",
    "opentelemetry-proto",
    "client_model",
];

fn main() {
    if let Err(e) = run() {
        // A build script reports failure by exiting non-zero; the message is what the user sees.
        eprintln!("spar-config build.rs: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPAR_ENVOY_PROTO_DIR");
    let proto_dir = match env::var_os("SPAR_ENVOY_PROTO_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => envoy_types_dir()?.join("proto"),
    };
    let includes: Vec<PathBuf> = INCLUDES
        .iter()
        .map(|d| proto_dir.join(d))
        .filter(|d| d.is_dir())
        .collect();
    if includes.is_empty() {
        return Err(format!(
            "no Envoy proto folders under {}",
            proto_dir.display()
        ));
    }
    let mut compiler = protox::Compiler::new(&includes).map_err(|e| e.to_string())?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(ROOTS).map_err(|e| format!("{e:?}"))?;
    let bytes = compiler.encode_file_descriptor_set();
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    std::fs::write(out.join("envoy_descriptor_set.bin"), bytes).map_err(|e| e.to_string())?;
    Ok(())
}

/// The folder of the envoy-types package that this crate depends on, from `cargo metadata`.
fn envoy_types_dir() -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?);
    let target = env::var("TARGET").map_err(|_| "TARGET is not set")?;
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &target,
        ]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.arg("--manifest-path")
            .arg(manifest_dir.join("Cargo.toml"));
        cmd.output()
            .map_err(|e| format!("running cargo metadata: {e}"))
    };
    // Offline first: the build has already fetched envoy-types. Online only if the
    // workspace lock file names packages this build never downloaded.
    let mut output = metadata(true)?;
    if !output.status.success() {
        output = metadata(false)?;
    }
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata output: {e}"))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    // The envoy-types id that our own package resolves to, so a second version elsewhere
    // in the graph cannot be picked by mistake.
    let own_manifest = manifest_dir.join("Cargo.toml");
    let own_id = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(own_manifest.as_path()))
        .and_then(|p| p["id"].as_str());
    let wanted_id = own_id.and_then(|own| {
        meta["resolve"]["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["id"].as_str() == Some(own))?["deps"]
            .as_array()?
            .iter()
            .find(|d| d["name"].as_str() == Some("envoy_types"))?["pkg"]
            .as_str()
    });
    let package = packages
        .iter()
        .find(|p| match wanted_id {
            Some(id) => p["id"].as_str() == Some(id),
            None => p["name"].as_str() == Some("envoy-types"),
        })
        .ok_or("envoy-types not found in cargo metadata")?;
    let manifest = package["manifest_path"]
        .as_str()
        .ok_or("envoy-types has no manifest_path")?;
    Path::new(manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("bad manifest path {manifest}"))
}
