//! Compiles every `bpf/*.bpf.c` into `$OUT_DIR/<name>.bpf.o` with clang, for
//! `aya::include_bytes_aligned!` in `src/source/*/loader.rs`.
//!
//! `-g` is not optional: the BTF it produces carries the CO-RE relocations and the ring buffer
//! map definitions aya needs at load time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=CLANG");
    // A directory is scanned as a whole: any change to a header or program reruns this script.
    println!("cargo::rerun-if-changed=bpf");

    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());

    if Command::new(&clang).arg("--version").output().is_err() {
        fail(&format!(
            "`{clang}` was not found: building vigil-sensor's eBPF programs needs clang and the \
             libbpf headers. Run `scripts/setup` (installs clang, llvm and libbpf-dev), or set \
             CLANG to a clang binary."
        ));
    }

    let entries = match std::fs::read_dir(&bpf_dir) {
        Ok(entries) => entries,
        Err(error) => fail(&format!("cannot read {}: {error}", bpf_dir.display())),
    };
    let mut sources: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();

    // Only the PT_REGS_* macros of bpf_tracing.h read this; it must still name the target.
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "arm64",
        Ok("riscv64") => "riscv",
        Ok("s390x") => "s390",
        Ok("powerpc64") => "powerpc",
        _ => "x86",
    };
    for source in &sources {
        compile(&clang, arch, &bpf_dir, source, &out_dir);
    }
}

fn compile(clang: &str, arch: &str, include: &Path, source: &Path, out_dir: &Path) {
    let file_name = source.file_name().map(|n| n.to_string_lossy().into_owned());
    let stem = file_name
        .as_deref()
        .and_then(|n| n.strip_suffix(".c"))
        .unwrap_or("program.bpf");
    let object = out_dir.join(format!("{stem}.o"));
    let output = Command::new(clang)
        .args(["-O2", "-g", "-Wall", "-target", "bpf"])
        .arg(format!("-D__TARGET_ARCH_{arch}"))
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&object)
        .output();
    match output {
        Ok(out) if out.status.success() => {
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                println!("cargo::warning={line}");
            }
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let hint = if stderr.contains("file not found") {
                "\nA header is missing: run `scripts/setup` (installs libbpf-dev)."
            } else {
                ""
            };
            fail(&format!(
                "clang failed to compile {}:\n{stderr}{hint}",
                source.display()
            ))
        }
        Err(error) => fail(&format!("cannot run `{clang}`: {error}")),
    }
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("cargo did not set {name}")))
}

fn fail(message: &str) -> ! {
    for line in message.lines() {
        println!("cargo::error={line}");
    }
    std::process::exit(1);
}
