//! Shared by the integration tests and the throughput bench: a small deterministic random
//! generator, a realistic mix of OCSF events, synthetic Sigma rule sets of any size, and
//! adversarial events built from the literals of a rule corpus.
#![allow(dead_code)]

mod events;

use serde_json::{Value, json};
use vigil_ocsf::Event;

#[allow(unused_imports)] // Not every test that includes the module uses every generator.
pub use events::{USERS, connection, file_activity, launch, logon, realistic_events};

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

/// Common fragments of real rules: they occur in everyday events too.
const COMMON_TOKENS: &[&str] = &[
    " -c ",
    " -e ",
    " -d ",
    " -o ",
    " -O ",
    " --output",
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
    "/etc/passwd",
    "/etc/shadow",
    "/root/.ssh/",
    ".bash_history",
    "http://",
    "https://",
    "| sh",
    "|bash",
    "base64",
    "chmod +x",
    "/proc/self/",
    "nohup ",
    "crontab",
    "sudo ",
    " -i ",
    "/dev/tcp/",
    "python",
    "perl -e",
    "wget ",
    "curl ",
    "0>&1",
    "iptables",
    "useradd",
];

const BINARIES: &[&str] = &[
    "bash",
    "sh",
    "dash",
    "zsh",
    "curl",
    "wget",
    "python3",
    "perl",
    "ruby",
    "php",
    "nc",
    "ncat",
    "socat",
    "ssh",
    "scp",
    "tar",
    "gzip",
    "base64",
    "chmod",
    "chown",
    "crontab",
    "systemctl",
    "useradd",
    "usermod",
    "passwd",
    "iptables",
    "ip",
    "ifconfig",
    "netstat",
    "ss",
    "ps",
    "kill",
    "pkill",
    "find",
    "grep",
    "awk",
    "sed",
    "xxd",
    "openssl",
    "dd",
    "mount",
    "insmod",
    "modprobe",
    "nohup",
    "screen",
    "tmux",
    "at",
    "git",
    "docker",
    "kubectl",
    "node",
    "java",
    "gcc",
];

/// A Sigma process_creation rule set of `n` rules, as one multi-document YAML text. Shapes
/// and literals follow real rules: binaries by suffix, command-line fragments (some common,
/// most rare indicators), `all`, filters, `1 of`, keywords, some regular expressions.
pub fn synthetic_rules(n: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    for i in 0..n {
        let rare = |rng: &mut Rng| match rng.below(4) {
            0 => format!("evil-{}", rng.hex(6)),
            1 => format!("/tmp/.{}", rng.hex(5)),
            2 => format!("c2-{}.example", rng.below(100_000)),
            _ => format!("--{}-{}", rng.pick(BINARIES), rng.hex(4)),
        };
        let token = |rng: &mut Rng| {
            if rng.chance(35) {
                rng.pick(COMMON_TOKENS).to_string()
            } else {
                rare(rng)
            }
        };
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let image = format!("/{}", rng.pick(BINARIES));
        let detection = match rng.below(100) {
            0..40 => format!(
                "    selection:\n        Image|endswith: {}\n        CommandLine|contains:\n            - {}\n            - {}\n    condition: selection\n",
                quote(&image),
                quote(&token(&mut rng)),
                quote(&token(&mut rng))
            ),
            40..55 => format!(
                "    selection:\n        CommandLine|contains|all:\n            - {}\n            - {}\n    condition: selection\n",
                quote(&token(&mut rng)),
                quote(&rare(&mut rng))
            ),
            55..70 => format!(
                "    selection:\n        Image|endswith: {}\n        CommandLine|contains: {}\n    filter:\n        ParentImage|startswith: '/usr/lib/'\n    condition: selection and not filter\n",
                quote(&image),
                quote(&token(&mut rng))
            ),
            70..80 => format!(
                "    selection_a:\n        CommandLine|contains: {}\n    selection_b:\n        Image|endswith: {}\n        CommandLine|startswith: {}\n    condition: 1 of selection_*\n",
                quote(&rare(&mut rng)),
                quote(&image),
                quote(&format!("{} {}", rng.pick(BINARIES), rare(&mut rng)))
            ),
            80..83 => format!(
                "    keywords:\n        - {}\n        - {}\n    condition: keywords\n",
                quote(&rare(&mut rng)),
                quote(&rare(&mut rng))
            ),
            83..88 => format!(
                "    selection:\n        CommandLine|re: {}\n    condition: selection\n",
                quote(&format!("{}\\s+-[a-z]*{}", rng.pick(BINARIES), rng.hex(2)))
            ),
            88..96 => format!(
                "    selection:\n        Image: {}\n        User: {}\n    condition: selection\n",
                quote(&format!("/usr/bin/{}", rng.pick(BINARIES))),
                quote(USERS[rng.below(USERS.len())])
            ),
            _ => format!(
                "    selection:\n        Image|endswith: {}\n    condition: selection\n",
                quote(&format!("/{}-{}", rng.pick(BINARIES), rng.hex(3)))
            ),
        };
        out.push_str(&format!(
            "---\ntitle: Synthetic {i}\nid: synthetic-{i}\nlogsource:\n    category: process_creation\n    product: linux\ndetection:\n{detection}level: medium\n"
        ));
    }
    out
}

/// Every string in the `detection` sections of a YAML text (field values, keywords).
pub fn detection_literals(yaml: &str) -> Vec<String> {
    fn walk(v: &serde_yaml::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml::Value::String(s) => out.push(s.clone()),
            serde_yaml::Value::Number(n) => out.push(n.to_string()),
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            serde_yaml::Value::Mapping(m) => m
                .iter()
                .filter(|(k, _)| k.as_str() != Some("condition"))
                .for_each(|(_, v)| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        if let Ok(v) = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            && let Some(d) = v.get("detection")
        {
            walk(d, &mut out);
        }
    }
    out
}

/// A literal turned into event text: wildcards dropped or filled, letter case and
/// characters mutated now and then, so events land on and beside the rules' edges.
fn mutate(rng: &mut Rng, literal: &str) -> String {
    let mut s: String = literal
        .chars()
        .filter_map(|c| match c {
            '*' if rng.chance(50) => None,
            '*' => Some(char::from(b"abcxyz/ -"[rng.below(9)])),
            '?' => Some('x'),
            _ => Some(c),
        })
        .collect();
    match rng.below(10) {
        0 => s = s.to_uppercase(),
        1 => s = s.chars().rev().collect(),
        2 if !s.is_empty() => {
            let cut = rng.below(s.len());
            s = s.chars().take(cut).collect();
        }
        3 => s = s.replace(['k', 'K'], "\u{212A}"),
        4 => s = s.replace('-', "\u{2013}"),
        5 => s = format!("Ü{s}é"),
        _ => {}
    }
    s
}

/// Events built from a corpus's literals: process launches whose image, command line, parent
/// and user are assembled from them, and connections with numbers and strings where ports
/// and addresses go.
pub fn adversarial_events(literals: &[String], n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let lit = |rng: &mut Rng| {
        if literals.is_empty() {
            String::new()
        } else {
            let l = rng.pick(literals).clone();
            mutate(rng, &l)
        }
    };
    (0..n)
        .map(|i| {
            let time = 1_700_000_000_000 + i as i64;
            if rng.chance(80) {
                let image = match rng.below(3) {
                    0 => lit(&mut rng),
                    1 => format!("/usr/bin{}", lit(&mut rng)),
                    _ => format!("/usr/bin/{}", rng.pick(BINARIES)),
                };
                let parts = 1 + rng.below(4);
                let cmd: Vec<String> = (0..parts).map(|_| lit(&mut rng)).collect();
                let sep = if rng.chance(50) { " " } else { "" };
                let parent_image = lit(&mut rng);
                let parent_cmd = lit(&mut rng);
                let user = if rng.chance(30) {
                    lit(&mut rng)
                } else {
                    rng.pick(USERS).to_string()
                };
                launch(
                    &image,
                    &cmd.join(sep),
                    (&parent_image, &parent_cmd),
                    &user,
                    time,
                )
            } else {
                let mut ev = connection(
                    ("198.51.100.7", 40_000),
                    ("10.0.0.5", 22),
                    rng.chance(50),
                    time,
                );
                let port: Value = match rng.below(4) {
                    0 => json!(lit(&mut rng)),
                    1 => json!(rng.below(65_536)),
                    2 => json!(rng.below(65_536) as f64),
                    _ => json!([rng.below(10_000), lit(&mut rng)]),
                };
                ev.data["dst_endpoint"]["port"] = port;
                ev.data["dst_endpoint"]["hostname"] = json!(lit(&mut rng));
                ev.data["dst_endpoint"]["ip"] = json!(lit(&mut rng));
                ev.data["actor"]["process"]["file"]["path"] = json!(lit(&mut rng));
                ev
            }
        })
        .collect()
}
