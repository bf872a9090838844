//! Generates the gRPC types and service stubs from `proto/fleet.proto` (needs `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/fleet.proto");
    if std::env::var_os("PROTOC").is_none() && which("protoc").is_none() {
        return Err("protoc not found: run scripts/setup (installs protobuf-compiler)".into());
    }
    tonic_prost_build::configure().compile_protos(&["proto/fleet.proto"], &["proto"])?;
    Ok(())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(bin))
        .find(|p| p.is_file())
}
