//! Generates the client side of Istio's `istio.v1.auth.IstioCertificateService` from the
//! CA's own proto file (one source of truth for both ends): protox compiles it in Rust (no
//! protoc binary), tonic-prost-build writes the client code only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO_DIR: &str = "../../cert-authority/ca/proto";
    println!("cargo:rerun-if-changed={PROTO_DIR}/ca.proto");
    let fds = protox::compile(["ca.proto"], [PROTO_DIR])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
