//! Every case in testdata/configs/ through `worker::config`, compared with what the
//! real fastd v22 printed (the whole stderr, timestamps removed) and its exit status.
//! Cases that need the command line (`cmdline-*`) or the key math (`show-key*` output)
//! are covered by the binary's tests in tests/cli.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use worker::config::{Config, ConfigError, FsSource, Loader};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/configs");

fn expected(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(DIR).join(format!("{name}.expected"))).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A source that resolves relative paths against the vectors directory, like running
/// fastd with that directory as the working directory.
struct InDir(PathBuf);

impl worker::config::ConfigSource for InDir {
    fn read_file(&self, p: &Path) -> std::io::Result<Vec<u8>> {
        FsSource.read_file(&self.0.join(p))
    }
    fn read_dir(&self, p: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        FsSource.read_dir(&self.0.join(p))
    }
    fn canonicalize_dir(&self, p: &Path) -> std::io::Result<PathBuf> {
        FsSource.canonicalize_dir(&self.0.join(p))
    }
    fn current_dir(&self) -> std::io::Result<PathBuf> {
        Ok(self.0.clone())
    }
    fn read_stdin(&self) -> std::io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

enum Run {
    Verify,
    ShowKey,
    Start,
}

/// Runs one case the way fastd's command would; returns (exit code, stderr lines).
fn run(name: &str, how: Run) -> (i32, Vec<String>) {
    let dir = std::fs::canonicalize(DIR).unwrap();
    let src = InDir(dir);
    let mut loader = Loader::new(&src);
    let mut lines = Vec::new();
    let fail = |e: ConfigError, lines: &mut Vec<String>| {
        lines.push(format!("Error: {e}"));
        1
    };
    let res = loader.load_file(Path::new(&format!("{name}.conf")));
    for d in loader.take_diagnostics() {
        lines.push(format!("{}{}", d.level.prefix(), d.message));
    }
    if let Err(e) = res {
        return (fail(e, &mut lines), lines);
    }
    let (mut cfg, diags): (Config, _) = loader.finish();
    assert!(diags.is_empty());
    let code = match how {
        Run::Verify => match cfg.verify() {
            Ok(()) => 0,
            Err(e) => fail(e, &mut lines),
        },
        Run::ShowKey => match cfg.secret_key_bytes() {
            Ok(_) => 0,
            Err(e) => fail(e, &mut lines),
        },
        Run::Start => match cfg
            .verify()
            .and_then(|()| cfg.secret_key_bytes().map(|_| ()))
        {
            Err(e) => fail(e, &mut lines),
            Ok(()) => match cfg.check_start() {
                Err(e) => fail(e, &mut lines),
                // User lookup is the privileged side's job.
                Ok(_) if cfg.user.is_some() => {
                    lines.push(format!(
                        "Error: config error: unable to find user `{}'.",
                        cfg.user.as_ref().unwrap().to_string_lossy()
                    ));
                    1
                }
                Ok(_) => 0,
            },
        },
    };
    (code, lines)
}

#[test]
fn every_config_vector() {
    let dir = std::fs::canonicalize(DIR).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".conf").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 47, "only {} cases", names.len());
    let mut checked = 0;
    for name in &names {
        let exp = expected(name);
        let cmd = &exp["command"];
        if cmd.contains("--mtu") || cmd.contains("--frobnicate") {
            continue; // command-line cases: tests/cli.rs
        }
        let how = if cmd.contains("--show-key") {
            Run::ShowKey
        } else if cmd.contains("--verify-config") {
            Run::Verify
        } else {
            Run::Start
        };
        let (code, lines) = run(name, how);
        let want_code: i32 = exp["exit_code"].parse().unwrap();
        assert_eq!(code, want_code, "{name}: exit code, stderr {lines:?}");
        let want_stderr = std::fs::read_to_string(dir.join(format!("{name}.stderr")))
            .unwrap_or_default()
            .replace("{CONFIG_DIR}", &dir.to_string_lossy());
        let want: Vec<&str> = want_stderr.lines().collect();
        assert_eq!(lines, want, "{name}: stderr");
        checked += 1;
    }
    assert_eq!(checked, names.len() - 2);
}

/// A config from the seed tutorial, from its first line to its `include peer` line, as the
/// user would copy it (testdata/tutorial/, see testdata/README.md).
fn from_tutorial(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/tutorial")
            .join(name),
    )
    .unwrap()
}

fn tutorial_alpha() -> String {
    from_tutorial("alpha.conf")
}

#[test]
fn tutorial_anyremote_accepted() {
    let text = from_tutorial("anyremote.conf");
    let dir = tempdir("anyremote");
    std::fs::create_dir_all(dir.join("peers")).unwrap();
    std::fs::copy(Path::new(DIR).join("peers/alpha"), dir.join("peers/alpha")).unwrap();
    std::fs::write(dir.join("fastd.conf"), &text).unwrap();
    let src = InDir(dir.clone());
    let mut l = Loader::new(&src);
    l.load_file(Path::new("fastd.conf")).unwrap();
    let (cfg, _) = l.finish();
    cfg.verify().unwrap();
    assert_eq!(
        cfg.peers[0].remotes,
        [worker::config::Remote::Address(
            "192.0.2.1:10000".parse().unwrap()
        )]
    );
    let root = &cfg.groups[0];
    assert!(root.hooks.establish.is_some() && root.hooks.disestablish.is_some());
    assert_eq!(cfg.mode, worker::config::Mode::Tun);
    assert_eq!(cfg.mtu, 1448);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tutorial_alpha_rejected_at_prose_line_then_accepted() {
    let text = tutorial_alpha();
    let prose = text
        .lines()
        .position(|l| l.trim() == "falls back to null if salsa is not chosen.")
        .unwrap();
    let dir = tempdir("alpha");
    std::fs::create_dir_all(dir.join("peers")).unwrap();
    std::fs::copy(
        Path::new(DIR).join("peers/anyremote"),
        dir.join("peers/anyremote"),
    )
    .unwrap();
    std::fs::write(dir.join("alpha.conf"), &text).unwrap();
    let src = InDir(dir.clone());
    let mut l = Loader::new(&src);
    let e = l.load_file(Path::new("alpha.conf")).unwrap_err();
    let loc = e.location().unwrap();
    assert_eq!(
        e.to_string(),
        format!("config error: syntax error at alpha.conf:{}:9", prose + 1)
    );
    assert_eq!((loc.pos.line as usize, loc.pos.col), (prose + 1, 9));
    let detail = e.detail_line().unwrap();
    assert!(
        detail.starts_with(&format!(
            "alpha.conf:{}:9: syntax error: unknown word `falls'",
            prose + 1
        )),
        "{detail}"
    );

    let fixed = text.replace("        falls back", "        # falls back");
    std::fs::write(dir.join("alpha.conf"), fixed).unwrap();
    let mut l = Loader::new(&src);
    l.load_file(Path::new("alpha.conf")).unwrap();
    let (cfg, _) = l.finish();
    cfg.verify().unwrap();
    assert_eq!(cfg.peers.len(), 1);
    assert_eq!(cfg.peers[0].name, None);
    assert_eq!(
        cfg.methods_for(worker::config::GroupId::ROOT),
        ["salsa2012+umac", "null"]
    );
    assert_eq!(
        cfg.groups[0].hooks.up.as_ref().unwrap().cwd,
        std::fs::canonicalize(&dir).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fastd-privsep-cfgtest-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
