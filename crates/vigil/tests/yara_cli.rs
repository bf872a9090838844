//! `vigil yara check` and `vigil yara scan`, run as an operator would: Vigil's own rule pack,
//! a broken rule file, and a folder of files of which one matches.
#![cfg(feature = "yara")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const PACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/yara");

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("yara")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vigil")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The EICAR test string, assembled so that this source file does not contain it.
fn eicar() -> Vec<u8> {
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
    s.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

#[test]
fn check_lists_the_rules_of_each_file() {
    let out = vigil(&["check", PACK]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for file in ["eicar", "miner", "mirai", "reverse_shell", "upx"] {
        let line = format!("/{file}.yar: 1 rules (namespace {file})");
        assert!(stdout.contains(&line), "{line} in {stdout}");
    }
    assert!(
        stdout.contains("5 rules in 5 files, 0 warnings"),
        "{stdout}"
    );
}

#[test]
fn check_fails_naming_the_file_and_line_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.yar"), "rule Ok { condition: true }").unwrap();
    let bad = dir.path().join("bad.yara");
    std::fs::write(
        &bad,
        "rule Bad {\n  strings:\n    $a = \"x\"\n  condition:\n    $b\n}\n",
    )
    .unwrap();
    let out = vigil(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:5: ", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("$b"),
        "yara-x's report shows the line: {stderr}"
    );
}

fn scan_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("clean.txt"), "nothing to see").unwrap();
    std::fs::write(root.join("sub/deeper/eicar.com"), eicar()).unwrap();
    std::fs::write(root.join("sub/big.bin"), vec![b'x'; 1_100_000]).unwrap();
    std::fs::copy("/bin/true", root.join("sub/true")).unwrap();
    // A link to the match is not followed inside a folder: the match is reported once.
    std::os::unix::fs::symlink(root.join("sub/deeper/eicar.com"), root.join("link.com")).unwrap();
}

#[test]
fn scan_reports_matches_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    scan_tree(dir.path());
    let root = dir.path().to_str().unwrap();
    let out = vigil(&["scan", "--rules", PACK, "--max-file-size", "1000000", root]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let eicar_path = dir.path().join("sub/deeper/eicar.com");
    assert_eq!(
        stdout,
        format!("{}  Vigil_EICAR_Test_File  test\n", eicar_path.display())
    );
    assert!(
        stderr.contains("3 files scanned")
            && stderr.contains("1 matches in 1 files")
            && stderr.contains("1 skipped (1 too large)"),
        "{stderr}"
    );
}

#[test]
fn scan_prints_findings_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    scan_tree(dir.path());
    let target = dir.path().join("sub/deeper/eicar.com");
    let out = vigil(&["scan", "--json", "--rules", PACK, target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let findings: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f["class_uid"], 2004);
    assert_eq!(
        f["finding_info"]["analytic"]["uid"],
        "yara:eicar.Vigil_EICAR_Test_File"
    );
    assert_eq!(f["finding_info"]["title"], "EICAR anti-virus test file");
    assert_eq!(f["severity_id"], 2);
    let file = &f["evidences"][0]["file"];
    assert_eq!(file["path"], target.to_str().unwrap());
    assert_eq!(
        file["hashes"][0]["value"],
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        "the EICAR file's well-known SHA-256"
    );
}

#[test]
fn scan_without_a_match_exits_0_and_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clean.txt"), "nothing").unwrap();
    let root = dir.path().to_str().unwrap();
    let out = vigil(&["scan", "--rules", PACK, root]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("1 files scanned"),
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path().join("missing");
    let out = vigil(&["scan", "--rules", PACK, missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing"),
        "{}",
        text(&out.stderr)
    );

    let broken = dir.path().join("broken.yar");
    std::fs::write(&broken, "rule {").unwrap();
    let out = vigil(&["scan", "--rules", broken.to_str().unwrap(), root]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{}:1:", broken.display())),
        "{}",
        text(&out.stderr)
    );
}
