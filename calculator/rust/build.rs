//! Generates the calculator.v1 and runtime.v1 client code from ../../proto at build time.
//! Uses the system `protoc` (Debian: protobuf-compiler), or the one named by $PROTOC.
fn main() -> Result<(), Box<dyn std::error::Error>> {
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
