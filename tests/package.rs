//! The Debian package as an operator gets it: `dist/package.sh` packs the tested binary,
//! dpkg installs it into a scratch root, the installed binary runs, `systemd-analyze verify`
//! accepts the installed unit (and its man page reference), `systemctl enable` of an instance
//! works, and `dpkg -r` takes everything away again. The scratch root keeps the host's package database untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> Output {
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {:?}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Builds the .deb from the binary under test; returns its path.
fn build_deb(out: &Path) -> PathBuf {
    let o = run(Command::new("bash")
        .arg(Path::new(REPO).join("dist/package.sh"))
        .args(["--binary", OURS, "--out"])
        .arg(out));
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Every path under `root` but dpkg's database, sorted.
fn tree(root: &Path) -> Vec<String> {
    let o = run(Command::new("find")
        .args([".", "-path", "./var/lib/dpkg", "-prune", "-o", "-print"])
        .current_dir(root));
    let mut v: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn dpkg(root: &Path, args: &[&str]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args))
}

/// `systemd-analyze verify` of the installed unit inside `root`; man finds the installed page.
fn verify(root: &Path) -> Output {
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("/lib/systemd/system/fastd-privsep@.service")
        .env("MANPATH", root.join("usr/share/man"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn package_contents_are_what_an_operator_expects() {
    if !ready(&["dpkg-deb", "dpkg-shlibdeps", "groff", "strip", "gzip"]) {
        return;
    }
    let (_t, out) = tempdir();
    let deb = build_deb(&out);
    let list = String::from_utf8(run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout).unwrap();
    let files: Vec<&str> = list
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(
        files,
        [
            "./lib/systemd/system/fastd-privsep@.service",
            "./usr/bin/fastd-privsep",
            "./usr/share/doc/fastd-privsep/README.md",
            "./usr/share/doc/fastd-privsep/changelog.gz",
            "./usr/share/doc/fastd-privsep/copyright",
            "./usr/share/man/man8/fastd-privsep.8.gz",
        ],
        "{list}"
    );
    assert!(list.contains("-rwxr-xr-x root/root"), "{list}");
    // No conffiles: the package owns nothing under /etc.
    let ctrl = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(ctrl.path()));
    assert!(!ctrl.path().join("conffiles").exists());
    let control = std::fs::read_to_string(ctrl.path().join("control")).unwrap();
    assert!(control.contains("\nDepends: libc6 (>= "), "{control}");
}

#[test]
fn package_installs_runs_verifies_and_removes_cleanly() {
    if !ready(&[
        "dpkg-deb",
        "dpkg-shlibdeps",
        "groff",
        "strip",
        "gzip",
        "systemd-analyze",
        "systemctl",
        "man",
    ]) {
        return;
    }
    let (_t, out) = tempdir();
    let deb = build_deb(&out);
    let (_r, root) = tempdir();
    // An empty package database, and what `systemd-analyze verify` needs from the host: the
    // system units the unit refers to, and ExecReload's /bin/kill.
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "bin",
        "usr/lib/systemd",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    sh_ok(
        "cp",
        &[
            "-r",
            "/lib/systemd/system",
            root.join("usr/lib/systemd").to_str().unwrap(),
        ],
    );
    let before = tree(&root);
    assert!(
        !verify(&root).status.success(),
        "verify passes without the unit"
    );

    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    let status = String::from_utf8(dpkg(&root, &["-s", "fastd-privsep"]).stdout).unwrap();
    assert!(status.contains("Status: install ok installed"), "{status}");
    let v = run(Command::new(root.join("usr/bin/fastd-privsep")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("fastd v22 (fastd-privsep {})\n", env!("CARGO_PKG_VERSION"))
    );
    let o = verify(&root);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && text.trim().is_empty(), "{text}");
    let man = run(Command::new("man")
        .args(["-w", "fastd-privsep"])
        .env("MANPATH", root.join("usr/share/man")));
    assert!(String::from_utf8_lossy(&man.stdout).contains("man8/fastd-privsep.8.gz"));

    // An operator's next step, `systemctl enable`, on the scratch root (it needs no running
    // systemd): the instance is wanted by multi-user.target through the packaged unit, and
    // `disable` takes it away again.
    let unit = "fastd-privsep@mesh.service";
    let ctl = |args: &[&str]| {
        let o = Command::new("systemctl")
            .arg(format!("--root={}", root.display()))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert!(ctl(&["enable", unit]).0, "systemctl enable {unit} failed");
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    let link = std::fs::read_link(wants.join(unit)).unwrap();
    assert!(
        root.join(link.strip_prefix("/").unwrap()).is_file()
            && link.ends_with("system/fastd-privsep@.service"),
        "{}",
        link.display()
    );
    assert_eq!(ctl(&["is-enabled", unit]), (true, "enabled\n".to_owned()));
    assert!(ctl(&["disable", unit]).0, "systemctl disable {unit} failed");
    assert!(!ctl(&["is-enabled", unit]).0);
    // `disable` keeps some of the directories `enable` made; remove_dir fails on one left
    // non-empty.
    for d in [
        "etc/systemd/system/multi-user.target.wants",
        "etc/systemd/system",
        "etc/systemd",
        "etc",
    ] {
        if !before.contains(&format!("./{d}")) {
            match std::fs::remove_dir(root.join(d)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{d}: {e}"),
                _ => {}
            }
        }
    }

    dpkg(&root, &["-r", "fastd-privsep"]);
    assert_eq!(tree(&root), before, "dpkg -r left files behind");
    dpkg(&root, &["-P", "fastd-privsep"]);
    assert_eq!(tree(&root), before);
    let gone = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "fastd-privsep"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "still known to dpkg after purge");
}
