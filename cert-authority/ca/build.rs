//! Generates the `istio.v1.auth` gRPC code (server and client) from `proto/ca.proto`:
//! protox compiles the file in Rust (no protoc binary), tonic-prost-build writes the code.
//! Without the `server` feature there is no gRPC code to generate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ca.proto");
    #[cfg(feature = "server")]
    {
        let fds = protox::compile(["ca.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
