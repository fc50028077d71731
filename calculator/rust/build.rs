//! Generates the calculator.v1 and runtime.v1 client code from ../../proto at build time.
//!
//! protoc comes from the `protoc-bin-vendored` crate (a protoc binary shipped inside a crates.io
//! package), so a fresh machine builds this client with cargo alone: no Debian protobuf-compiler,
//! no download at build time. An explicit `$PROTOC` still wins, for a machine that wants its own.
use std::env;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    if env::var_os("PROTOC").filter(|p| !p.is_empty()).is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // prost-build reads $PROTOC; the build script is single-threaded here, so setting it is safe.
        env::set_var("PROTOC", protoc);
    }
    let root = "../../proto";
    let protos = [
        "../../proto/calculator/v1/calculator.proto",
        "../../proto/runtime/v1/broker.proto",
    ];
    tonic_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos(&protos, &[root])?;
    println!("cargo:rerun-if-changed={root}/calculator/v1/calculator.proto");
    println!("cargo:rerun-if-changed={root}/runtime/v1");
    Ok(())
}
