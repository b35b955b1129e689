#![allow(clippy::unwrap_used, clippy::expect_used)]
//! dist/fastd-privsep@.service, tried for real without a running systemd: the binary runs
//! under what the unit file says (read from the file, so this test follows the unit): its
//! capability bounding set, no_new_privs, its umask, a read-only file system but for its
//! ReadWritePaths=, no /home or /root (ProtectHome=), its own /tmp if PrivateTmp=, and
//! RuntimeDirectory= created, passed and removed as systemd does on stop and restart
//! (honouring RuntimeDirectoryPreserve=). Each start runs in a mount namespace of its own
//! inside one network namespace made for the test; /run is a directory of the test's, so
//! nothing on the host is touched. The system call and address family filters are not
//! emulated. The unit file itself is checked with `systemd-analyze verify` and `security`.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/fastd-privsep@.service");

/// The unit under test; FASTD_PRIVSEP_UNIT names another file (e.g. an older version).
fn unit_path() -> String {
    std::env::var("FASTD_PRIVSEP_UNIT").unwrap_or_else(|_| UNIT.to_owned())
}
const MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/fastd-privsep.8");
/// The highest exposure `systemd-analyze security` may give the unit (Debian's fastd@.service: 9.6).
const MAX_EXPOSURE: f64 = 4.5;

/// The [Service] section: every key with its values in order (keys may repeat).
struct Unit(BTreeMap<String, Vec<String>>);

impl Unit {
    fn load() -> Unit {
        let text = std::fs::read_to_string(unit_path()).unwrap();
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
            } else if let (Some((k, v)), "[Service]") = (line.split_once('='), section.as_str()) {
                if !line.starts_with('#') {
                    keys.entry(k.trim().to_owned())
                        .or_default()
                        .push(v.trim().to_owned());
                }
            }
        }
        Unit(keys)
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.last()).map(String::as_str)
    }

    fn yes(&self, key: &str) -> bool {
        matches!(self.one(key), Some("yes" | "true" | "1"))
    }

    /// The space-separated words of every line of `key`, `%i` replaced by `instance`.
    fn words(&self, key: &str, instance: &str) -> Vec<String> {
        self.0
            .get(key)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
            .map(|w| w.replace("%i", instance).replace("%I", instance))
            .collect()
    }

    /// setpriv's form of CapabilityBoundingSet=.
    fn bounding_set(&self) -> String {
        let caps = self.words("CapabilityBoundingSet", "");
        assert!(!caps.is_empty(), "the unit sets no CapabilityBoundingSet=");
        let mut set = vec!["-all".to_owned()];
        set.extend(caps.iter().map(|c| {
            format!(
                "+{}",
                c.to_lowercase().strip_prefix("cap_").expect("a cap name")
            )
        }));
        set.join(",")
    }

    /// CapabilityBoundingSet= as /proc/PID/status shows it.
    fn bounding_mask(&self) -> String {
        const NUMBERS: [&str; 41] = [
            "chown",
            "dac_override",
            "dac_read_search",
            "fowner",
            "fsetid",
            "kill",
            "setgid",
            "setuid",
            "setpcap",
            "linux_immutable",
            "net_bind_service",
            "net_broadcast",
            "net_admin",
            "net_raw",
            "ipc_lock",
            "ipc_owner",
            "sys_module",
            "sys_rawio",
            "sys_chroot",
            "sys_ptrace",
            "sys_pacct",
            "sys_admin",
            "sys_boot",
            "sys_nice",
            "sys_resource",
            "sys_time",
            "sys_tty_config",
            "mknod",
            "lease",
            "audit_write",
            "audit_control",
            "setfcap",
            "mac_override",
            "mac_admin",
            "syslog",
            "wake_alarm",
            "block_suspend",
            "audit_read",
            "perfmon",
            "bpf",
            "checkpoint_restore",
        ];
        let mask = self
            .words("CapabilityBoundingSet", "")
            .iter()
            .map(|c| {
                let name = c.to_lowercase();
                let name = name.strip_prefix("cap_").unwrap_or(&name).to_owned();
                let bit = NUMBERS.iter().position(|n| *n == name).expect("a cap name");
                1u64 << bit
            })
            .fold(0, |a, b| a | b);
        format!("{mask:016x}")
    }

    /// Writable paths (ReadWritePaths=; a leading `-` only means "may be missing").
    fn writable(&self) -> Vec<String> {
        self.words("ReadWritePaths", "")
            .into_iter()
            .map(|p| p.trim_start_matches('-').to_owned())
            .collect()
    }
}

/// One instance, started as systemd would start `fastd-privsep@NAME`.
struct Instance<'a> {
    name: String,
    unit: &'a Unit,
    /// The test's stand-in for /run (shared by all instances, as /run is).
    run: &'a Path,
    conf: PathBuf,
}

impl<'a> Instance<'a> {
    /// Instance `name` with its config in `etc` (see [`config`], no gateway), with
    /// `edit.0` replaced by `edit.1` in it.
    fn edited(
        unit: &'a Unit,
        run: &'a Path,
        etc: &Path,
        name: String,
        port: u16,
        edit: (&str, &str),
    ) -> Self {
        let conf = config(etc, &name, port, false);
        let text = std::fs::read_to_string(&conf)
            .unwrap()
            .replace(edit.0, edit.1);
        std::fs::write(&conf, text).unwrap();
        Instance {
            name,
            unit,
            run,
            conf,
        }
    }
}

impl Instance<'_> {
    /// RuntimeDirectory= entries on the host side.
    fn runtime_dirs(&self) -> Vec<PathBuf> {
        self.unit
            .words("RuntimeDirectory", &self.name)
            .iter()
            .map(|d| self.run.join(d))
            .collect()
    }

    fn start(&self, ns: &Netns) -> Daemon {
        let mode = u32::from_str_radix(self.unit.one("RuntimeDirectoryMode").unwrap_or("0755"), 8)
            .unwrap();
        for d in self.runtime_dirs() {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let runtime: Vec<String> = self
            .unit
            .words("RuntimeDirectory", &self.name)
            .iter()
            .map(|d| format!("/run/{d}"))
            .collect();
        let mut writable = self.unit.writable().join(" ");
        if self.unit.one("ProtectSystem") != Some("strict") {
            writable = "/".to_owned();
        }
        let private_tmp = if self.unit.yes("PrivateTmp") {
            "mount -t tmpfs tmpfs /tmp\n"
        } else {
            ""
        };
        let protect_home = if self.unit.yes("ProtectHome") {
            "for h in /home /root /run/user; do\n\
               if [ -d \"$h\" ]; then mount -t tmpfs -o ro,mode=000 tmpfs \"$h\"; fi\n\
             done\n"
        } else {
            ""
        };
        let nnp = if self.unit.yes("NoNewPrivileges") {
            "--no-new-privs"
        } else {
            ""
        };
        // Only `remount,bind` is used: it changes this namespace's mount, never the file
        // system (a plain `remount,ro` would reach the host).
        let script = format!(
            r#"set -eu
mount --make-rprivate /
mount --bind "$RUN" /run
for p in {writable}; do mount --rbind "$p" "$p"; done
awk '{{print $5}}' /proc/self/mountinfo | sort -u | while read -r m; do
  case "$m" in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) continue;; esac
  # Hidden under the test's /run (or another mount): not reachable, nothing to do.
  [ -e "$m" ] || continue
  keep=no
  for p in {writable}; do
    case "$m" in "$p"|"$p"/*) keep=yes;; esac
    if [ "$p" = / ]; then keep=yes; fi
  done
  if [ $keep = no ]; then
    mount -o remount,bind,ro "$m" || echo "unit emulation: $m stays writable" >&2
  fi
done
{private_tmp}{protect_home}umask {umask}
exec setpriv --bounding-set {caps} --inh-caps -all {nnp} -- \
  env RUNTIME_DIRECTORY={runtime} "$@"
"#,
            umask = self.unit.one("UMask").unwrap_or("0022"),
            caps = self.unit.bounding_set(),
            runtime = runtime.join(":"),
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, "unshare", "-m", "--", "sh", "-c"])
            .arg(script)
            .arg("unit")
            .arg(OURS)
            .args(["--syslog-level", "info", "--syslog-ident"])
            .arg(format!("fastd@{}", self.name))
            .arg("-c")
            .arg(&self.conf)
            .env("RUN", self.run);
        Daemon::spawn(cmd)
    }

    /// What systemd does once the main process is gone, on `stop` or before an automatic
    /// restart: remove the runtime directories unless RuntimeDirectoryPreserve= keeps them.
    fn after_exit(&self, restarting: bool) {
        let keep = match self.unit.one("RuntimeDirectoryPreserve") {
            Some("yes" | "true" | "1") => true,
            Some("restart") => restarting,
            _ => false,
        };
        if !keep {
            for d in self.runtime_dirs() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    fn socket(&self) -> PathBuf {
        self.run.join(format!("fastd.{}.sock", self.name))
    }
}

/// Reads one status document, as an exporter does.
fn status_json(sock: &Path) -> String {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut doc = String::new();
    s.read_to_string(&mut doc).unwrap();
    doc
}

fn config(dir: &Path, name: &str, port: u16, gateway: bool) -> PathBuf {
    let gw = if gateway {
        "interface address 172.16.16.1/24;\nmasquerade from 172.16.16.0/24 out \"lo\";\n"
    } else {
        ""
    };
    let ifname = &name[name.len().saturating_sub(15)..];
    // Hooks may write to the unit's runtime directory (and /run, /tmp); `ip` works.
    let conf = format!(
        r#"log to stderr level verbose;
mode tun;
interface "{ifname}";
method "salsa2012+umac";
bind 127.0.0.1:{port};
secret "{ALPHA_SECRET}";
status socket "/var/run/fastd.{name}.sock";
{gw}on up "ip link set up dev $INTERFACE && echo up $INTERFACE > $RUNTIME_DIRECTORY/up";
peer "anyremote" {{ key "{AR_PUBLIC}"; }}
"#
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf).unwrap();
    path
}

fn assert_sandboxed(worker: i32) {
    for f in ["Uid", "Gid"] {
        let ids = status_field(worker, f);
        assert!(
            !ids.split(' ').any(|id| id == "0" || id == "65534"),
            "{f}: {ids}"
        );
    }
    for f in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(worker, f), "0000000000000000", "{f}");
    }
    assert_eq!(status_field(worker, "NoNewPrivs"), "1");
    assert_eq!(status_field(worker, "Seccomp"), "2");
}

/// The journal file(s) of an instance's helper, with their text.
fn journal(runtime_dir: &Path) -> String {
    std::fs::read_dir(runtime_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".gateway"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// The unit, a namespace, and the test's stand-in for /run (in a directory kept by the
/// returned guard).
fn unit_world(tag: &str) -> (Unit, Netns, tempfile::TempDir, PathBuf) {
    let unit = Unit::load();
    let ns = Netns::new(tag);
    let (keep, tmp) = tempdir();
    (unit, ns, keep, tmp.join("run"))
}

#[test]
fn two_instances_under_the_unit_stop_one_and_crash_restart_the_other() {
    if !ready(&["setpriv", "unshare", "awk", "nft"]) {
        return;
    }
    let (unit, ns, _keep, run) = unit_world("unit");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Config files outside /run and /tmp: read-only under the unit, as /etc/fastd is.
    let etc = outside_writable_paths();
    let tag = format!("u{}", std::process::id() % 100_000);
    let a = Instance {
        name: format!("{tag}a"),
        unit: &unit,
        run: &run,
        conf: config(etc.path(), &format!("{tag}a"), 10001, false),
    };
    let b = Instance {
        name: format!("{tag}b"),
        unit: &unit,
        run: &run,
        conf: config(etc.path(), &format!("{tag}b"), 10002, true),
    };

    let da = a.start(&ns);
    da.wait_for("a's status socket", || a.socket().exists());
    let db = b.start(&ns);
    db.wait_for("b's status socket", || b.socket().exists());
    // The helper runs as the unit says: its bounding set, no_new_privs, a read-only root.
    assert_eq!(status_field(da.pid(), "CapBnd"), unit.bounding_mask());
    assert_eq!(status_field(da.pid(), "CapEff"), unit.bounding_mask());
    assert_eq!(status_field(da.pid(), "NoNewPrivs"), "1");
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", da.pid())).unwrap();
    let root = mounts
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
    for (i, d) in [(&a, &da), (&b, &db)] {
        d.wait_for("the up hook", || i.runtime_dirs()[0].join("up").exists());
        assert!(status_json(&i.socket()).contains("\"uptime\": "));
        assert_sandboxed(d.worker().expect("no worker"));
    }
    // Each instance has its own identity.
    let (wa, wb) = (da.worker().unwrap(), db.worker().unwrap());
    assert_ne!(status_field(wa, "Uid"), status_field(wb, "Uid"));
    // The gateway's undo journal lives in b's own runtime directory.
    let b_dir = b.runtime_dirs()[0].clone();
    assert!(journal(&b_dir).contains("forwarding v4 0"), "{}", db.log());
    assert_eq!(ns.forwarding(), "1");

    // systemctl stop fastd-privsep@a: b keeps its socket, its directory and its journal.
    let (status, log) = da.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    a.after_exit(false);
    assert!(!a.socket().exists(), "{log}");
    assert!(b.socket().exists());
    assert!(status_json(&b.socket()).contains(&format!("\"{AR_PUBLIC}\"")));
    assert!(journal(&b_dir).contains("forwarding v4 0"));

    // kill -9 b's helper: Restart=on-failure starts it again, and that start finds the
    // journal and undoes what the dead one left (forwarding), before setting it up anew.
    let b_worker = db.worker().unwrap();
    db.signal(libc::SIGKILL);
    let mut db = db;
    db.reap();
    db.wait_for("b's worker to follow", || pid_gone(b_worker));
    assert_eq!(ns.forwarding(), "1", "the crash left forwarding on");
    assert!(unit.one("Restart").is_some_and(|r| r != "no"));
    b.after_exit(true);
    let _ = std::fs::remove_file(b_dir.join("up"));
    let db = b.start(&ns);
    db.wait_for("b's up hook", || b_dir.join("up").exists());
    db.wait_for("b's journal", || {
        journal(&b_dir).contains("forwarding v4 0")
    });
    assert!(
        status_json(&b.socket()).contains("\"uptime\": "),
        "{}",
        db.log()
    );
    let (status, log) = db.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    b.after_exit(false);
    // Nothing is left: forwarding as before the first start, no socket.
    assert_eq!(ns.forwarding(), "0", "{log}");
    assert!(!b.socket().exists());
    assert!(!journal(&b_dir).contains("forwarding"));
}

/// A config whose status socket cannot be created under the unit fails with status 1 and
/// leaves no file; fastd's own path under /var/run works (the test above).
#[test]
fn a_status_socket_outside_the_writable_paths_fails_cleanly() {
    if !ready(&["setpriv", "unshare", "awk"]) {
        return;
    }
    let (unit, ns, _keep, run) = unit_world("unitro");
    std::fs::create_dir(&run).unwrap();
    let etc = outside_writable_paths();
    let name = format!("r{}", std::process::id() % 100_000);
    let sock = etc.path().join("status.sock");
    let from = format!("/var/run/fastd.{name}.sock");
    let i = Instance::edited(
        &unit,
        &run,
        etc.path(),
        name,
        10003,
        (&from, sock.to_str().unwrap()),
    );
    let mut d = i.start(&ns);
    let (status, log) = d.reap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    let left: Vec<_> = std::fs::read_dir(etc.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// A root for `systemd-analyze verify --root`: the unit, an executable at ExecStart's path,
/// and the host's system units it refers to; `man fastd-privsep` finds dist's page.
fn verify_root() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in [
        "etc/systemd/system",
        "usr/bin",
        "bin",
        "usr/lib/systemd",
        "man/man8",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(
        unit_path(),
        r.join("etc/systemd/system/fastd-privsep@.service"),
    )
    .unwrap();
    std::fs::copy(OURS, r.join("usr/bin/fastd-privsep")).unwrap();
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    sh_ok(
        "cp",
        &[
            "-r",
            "/lib/systemd/system",
            r.join("usr/lib/systemd/").to_str().unwrap(),
        ],
    );
    std::fs::copy(MAN, r.join("man/man8/fastd-privsep.8")).unwrap();
    let man = r.join("man");
    (root, man)
}

#[test]
fn the_unit_file_verifies_clean() {
    if !ready(&["systemd-analyze", "man"]) {
        return;
    }
    let (root, man) = verify_root();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("/etc/systemd/system/fastd-privsep@.service")
        .env("MANPATH", man)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_unit_file_exposure_is_at_most_4_5() {
    if !ready(&["systemd-analyze"]) {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {text}"));
    let score: f64 = line
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line}"));
    assert!(score <= MAX_EXPOSURE, "{line}");
}

/// With `user`, the helper creates the socket as that user under the unit's bounding set
/// (which has no CAP_CHOWN), in a directory the user may write, as fastd does.
#[test]
fn with_user_the_status_socket_is_created_as_the_user_under_the_unit() {
    if !ready(&["setpriv", "unshare", "awk"]) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let (unit, ns, _keep, run) = unit_world("unituser");
    let name = format!("s{}", std::process::id() % 100_000);
    let sockdir = run.join(&name);
    std::fs::create_dir_all(&sockdir).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&sockdir, Some(65534), Some(65534)).unwrap();
    let etc = outside_writable_paths();
    let from = format!("status socket \"/var/run/fastd.{name}.sock\";");
    let to = format!("user \"nobody\";\nstatus socket \"/run/{name}/status.sock\";");
    let i = Instance::edited(&unit, &run, etc.path(), name, 10004, (&from, &to));
    let d = i.start(&ns);
    d.wait_for("the up hook", || i.runtime_dirs()[0].join("up").exists());
    for f in ["status.sock", "status.sock.lock"] {
        let meta = std::fs::symlink_metadata(sockdir.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{f}");
    }
    assert!(status_json(&sockdir.join("status.sock")).contains("\"uptime\": "));
    assert_eq!(
        status_field(d.worker().unwrap(), "Uid"),
        "65534 65534 65534 65534"
    );
    let (status, log) = d.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    i.after_exit(false);
    assert!(!sockdir.join("status.sock").exists(), "{log}");
}

/// A directory outside the unit's writable paths (read-only under it, as /etc/fastd is),
/// wherever the checkout lives: the target directory may itself be under /tmp.
fn outside_writable_paths() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp").unwrap();
    tempfile::tempdir_in("/var/tmp").unwrap()
}
