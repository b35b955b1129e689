//! fastd v22's command line (docs/config.md §3): strictly left to right, each option acts when
//! it is reached, exact error texts. Config files and options share one [`Loader`]. The
//! binary's front end parses it on the real file system (and answers `--help`, the key
//! tools, `--daemon`); the worker parses the same command line again over the file bytes
//! the helper reads for it.

use super::{
    Bind, BindAddress, Config, ConfigError, ConfigSource, GroupId, Hook, HookKind, InterfaceName,
    Loader, LogLevel, Mode,
};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// fastd's stderr line (`<timestamp> --- <Prefix><message>`) before logging is set up:
/// during start-up fastd prints every level.
pub fn early_log(level: LogLevel, message: &str) {
    // A failing stderr cannot be reported anywhere else.
    let _ = std::io::stderr()
        .lock()
        .write_all(&logline::stderr_line(level, message));
}

fn error(message: &str) {
    early_log(LogLevel::Error, message);
}

/// What an option does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    Daemon,
    PidFile,
    StatusSocket,
    Config,
    ConfigPeer,
    ConfigPeerDir,
    User,
    Group,
    LogLevel,
    SyslogLevel,
    SyslogIdent,
    HideIp,
    HideMac,
    Mode,
    Interface,
    Mtu,
    Bind,
    Protocol,
    Method,
    Forward,
    OnPreUp,
    OnUp,
    OnDown,
    OnPostDown,
    OnConnect,
    OnEstablish,
    OnDisestablish,
    OnVerify,
    VerifyConfig,
    GenerateKey,
    ShowKey,
    MachineReadable,
}

/// One line of the option table: spellings, argument text (None = no argument), help.
struct OptSpec {
    names: &'static [&'static str],
    arg: Option<&'static str>,
    help: &'static str,
    opt: Opt,
}

const fn o(
    names: &'static [&'static str],
    arg: Option<&'static str>,
    help: &'static str,
    opt: Opt,
) -> Option<OptSpec> {
    Some(OptSpec {
        names,
        arg,
        help,
        opt,
    })
}

const LEVELS: &str = "error|warn|info|verbose|debug|debug2";

/// fastd v22's options in `--help` order; `None` is an empty line between groups.
const OPTIONS: &[Option<OptSpec>] = &[
    o(&["--help", "-h"], None, "Shows this help text", Opt::Help),
    o(&["--version", "-v"], None, "Shows the fastd version", Opt::Version),
    o(&["--daemon", "-d"], None, "Runs fastd in the background", Opt::Daemon),
    o(&["--pid-file"], Some("<filename>"), "Writes fastd's PID to the specified file", Opt::PidFile),
    o(&["--status-socket"], Some("<socket>"), "Configure a socket to get fastd's status", Opt::StatusSocket),
    None,
    o(&["--config", "-c"], Some("<filename>"), "Loads a config file", Opt::Config),
    o(&["--config-peer"], Some("<filename>"), "Loads a config file for a single peer", Opt::ConfigPeer),
    o(&["--config-peer-dir"], Some("<dir>"), "Loads all files from a directory as peer configs", Opt::ConfigPeerDir),
    None,
    o(&["--user"], Some("<user>"), "Sets the user to run fastd as", Opt::User),
    o(&["--group"], Some("<group>"), "Sets the group to run fastd as", Opt::Group),
    None,
    o(&["--log-level"], Some(LEVELS), "Sets the stderr log level; default is info, if no alternative log destination is configured", Opt::LogLevel),
    o(&["--syslog-level"], Some(LEVELS), "Sets the log level for syslog output; default is not to use syslog", Opt::SyslogLevel),
    o(&["--syslog-ident"], Some("<ident>"), "Sets the syslog identification; default is 'fastd'", Opt::SyslogIdent),
    o(&["--hide-ip-addresses"], None, "Hides IP addresses in log output", Opt::HideIp),
    o(&["--hide-mac-addresses"], None, "Hides MAC addresses in log output", Opt::HideMac),
    None,
    o(&["--mode", "-m"], Some("tap|multitap|tun"), "Sets the mode of operation", Opt::Mode),
    o(&["--interface", "-i"], Some("<name>"), "Sets the name of the TUN/TAP interface to use", Opt::Interface),
    o(&["--mtu", "-M"], Some("<mtu>"), "Sets the MTU; must be at least 576", Opt::Mtu),
    o(&["--bind", "-b"], Some("<address>[:<port>]"), "Sets the bind address", Opt::Bind),
    o(&["--protocol", "-p"], Some("<protocol>"), "Sets the protocol", Opt::Protocol),
    o(&["--method"], Some("<method>"), "Sets the encryption method", Opt::Method),
    o(&["--forward"], None, "Enables forwarding of packets between peers; read the documentation before use!", Opt::Forward),
    None,
    o(&["--on-pre-up"], Some("<command>"), "Sets a shell command to execute before interface creation", Opt::OnPreUp),
    o(&["--on-up"], Some("<command>"), "Sets a shell command to execute after interface creation", Opt::OnUp),
    o(&["--on-down"], Some("<command>"), "Sets a shell command to execute before interface destruction", Opt::OnDown),
    o(&["--on-post-down"], Some("<command>"), "Sets a shell command to execute after interface destruction", Opt::OnPostDown),
    o(&["--on-connect"], Some("<command>"), "Sets a shell command to execute when a handshake is sent to establish a new connection", Opt::OnConnect),
    o(&["--on-establish"], Some("<command>"), "Sets a shell command to execute when a new connection is established", Opt::OnEstablish),
    o(&["--on-disestablish"], Some("<command>"), "Sets a shell command to execute when a connection is lost", Opt::OnDisestablish),
    o(&["--on-verify"], Some("<command>"), "Sets a shell command to execute to check a connection attempt by an unknown peer", Opt::OnVerify),
    None,
    o(&["--verify-config"], None, "Checks the configuration and exits", Opt::VerifyConfig),
    o(&["--generate-key"], None, "Generates a new keypair", Opt::GenerateKey),
    o(&["--show-key"], None, "Shows the public key corresponding to the configured secret", Opt::ShowKey),
    o(&["--machine-readable"], None, "Suppresses output of explaining text in the --show-key and --generate-key commands", Opt::MachineReadable),
];

/// The `--help` text, byte for byte as fastd v22 prints it.
pub fn help_text() -> String {
    let mut s = String::from("fastd (Fast and Secure Tunnelling Daemon) v22 usage:\n\n");
    for spec in OPTIONS {
        let Some(spec) = spec else {
            s.push('\n');
            continue;
        };
        let mut head = format!("  {}", spec.names.join(", "));
        if let Some(a) = spec.arg {
            head.push(' ');
            head.push_str(a);
        }
        s.push_str(&head);
        if head.len() < 28 {
            s.push_str(&" ".repeat(28 - head.len()));
        } else {
            s.push('\n');
            s.push_str(&" ".repeat(28));
        }
        s.push_str(spec.help);
        s.push('\n');
    }
    s
}

fn lookup(arg: &OsStr) -> Option<&'static OptSpec> {
    OPTIONS
        .iter()
        .flatten()
        .find(|s| s.names.iter().any(|n| n.as_bytes() == arg.as_bytes()))
}

/// Is `arg` one of fastd's options that take an argument?
pub fn takes_argument(arg: &OsStr) -> bool {
    lookup(arg).is_some_and(|s| s.arg.is_some())
}

/// An error that ends the program with exit status 1 after `Error: <text>`.
enum Fatal {
    /// A command-line error text.
    Message(String),
    /// A config error (located ones get a second, detailed line).
    Config(ConfigError),
}

impl From<ConfigError> for Fatal {
    fn from(e: ConfigError) -> Self {
        Fatal::Config(e)
    }
}

/// The special modes and daemon options seen on the command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Modes {
    /// `--verify-config`
    pub verify_config: bool,
    /// `--generate-key` (the last of it and `--show-key` wins)
    pub generate_key: bool,
    /// `--show-key`
    pub show_key: bool,
    /// `--machine-readable`
    pub machine_readable: bool,
    /// `--daemon`
    pub daemon: bool,
    /// `--pid-file` (the last one wins)
    pub pid_file: Option<OsString>,
}

/// The result of going through the command line.
pub enum Parsed {
    /// `--help` was reached: print [`help_text`], exit 0.
    Help,
    /// `--version` was reached: print fastd's version line, exit 0.
    Version,
    /// An error, already printed: exit 1.
    Failed,
    /// Everything parsed: the configuration and the modes.
    Run(Box<Config>, Modes),
}

/// Goes through the command line left to right, reading config files through `source`
/// as they come up (the worker replays it on file bytes received from the helper).
/// Messages and errors are printed on stderr as fastd prints them; `cwd` is the
/// working directory of command-line hooks.
pub fn parse(args: &[OsString], source: &dyn ConfigSource, cwd: &Path) -> Parsed {
    let mut loader = Loader::new(source);
    let mut modes = Modes::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let Some(spec) = lookup(arg) else {
            error(&format!(
                "command line error: unknown option `{}'; see --help for usage",
                arg.to_string_lossy()
            ));
            return Parsed::Failed;
        };
        let value = if spec.arg.is_some() {
            match args.get(i + 1) {
                Some(v) => Some(v.as_os_str()),
                None => {
                    error(&format!(
                        "command line error: option `{}' needs an argument; see --help for usage",
                        arg.to_string_lossy()
                    ));
                    return Parsed::Failed;
                }
            }
        } else {
            None
        };
        i += if value.is_some() { 2 } else { 1 };
        match spec.opt {
            Opt::Help => return Parsed::Help,
            Opt::Version => return Parsed::Version,
            _ => {}
        }
        let r = apply(
            &mut loader,
            &mut modes,
            spec.opt,
            value.unwrap_or_default(),
            cwd,
        );
        flush_diagnostics(&mut loader);
        if let Err(e) = r {
            report(&e);
            return Parsed::Failed;
        }
    }
    let (config, diags) = loader.finish();
    for d in diags {
        early_log(d.level, &d.message);
    }
    Parsed::Run(Box::new(config), modes)
}

/// Prints fastd's error line; for a located config error also the project's
/// `file:line:col: message` line that says what was found and what was expected.
fn report(e: &Fatal) {
    match e {
        Fatal::Message(m) => error(m),
        Fatal::Config(e) => report_config_error(e),
    }
}

/// fastd's `Error:` line of a config error, and the detail line of a located one.
pub fn report_config_error(e: &ConfigError) {
    error(&e.to_string());
    if let Some(detail) = e.detail_line() {
        early_log(LogLevel::Info, &detail);
    }
}

fn flush_diagnostics(loader: &mut Loader<'_>) {
    for d in loader.take_diagnostics() {
        early_log(d.level, &d.message);
    }
}

fn hook(cmd: &OsStr, sync: bool, cwd: &Path) -> Hook {
    Hook {
        command: cmd.to_owned(),
        sync,
        cwd: cwd.to_path_buf(),
    }
}

/// Applies one option (not `--help`/`--version`).
fn apply(
    loader: &mut Loader<'_>,
    modes: &mut Modes,
    opt: Opt,
    v: &OsStr,
    cwd: &Path,
) -> Result<(), Fatal> {
    let text = || v.to_string_lossy().into_owned();
    match opt {
        Opt::Help | Opt::Version => {}
        Opt::Daemon => modes.daemon = true,
        Opt::PidFile => modes.pid_file = Some(v.to_owned()),
        Opt::StatusSocket => loader.config_mut().status_socket = Some(PathBuf::from(v)),
        Opt::Config => {
            if v.as_bytes() == b"-" {
                loader.load_stdin()?;
            } else {
                loader.load_file(Path::new(v))?;
            }
        }
        Opt::ConfigPeer => loader.load_peer_file(Path::new(v))?,
        Opt::ConfigPeerDir => loader.add_peer_dir_option(Path::new(v)),
        Opt::User => loader.config_mut().user = Some(v.to_owned()),
        Opt::Group => loader.config_mut().group = Some(v.to_owned()),
        Opt::LogLevel | Opt::SyslogLevel => {
            let l = LogLevel::from_name(&text())
                .ok_or_else(|| Fatal::Message(format!("invalid log level `{}'", text())))?;
            let log = &mut loader.config_mut().log;
            if opt == Opt::LogLevel {
                log.stderr_level = Some(l);
            } else {
                log.syslog_level = Some(l);
            }
        }
        Opt::SyslogIdent => loader.config_mut().log.syslog_ident = text(),
        Opt::HideIp => loader.config_mut().hide_ip_addresses = true,
        Opt::HideMac => loader.config_mut().hide_mac_addresses = true,
        Opt::Mode => {
            loader.config_mut().mode = match v.as_bytes() {
                b"tap" => Mode::Tap,
                b"multitap" => Mode::Multitap,
                b"tun" => Mode::Tun,
                _ => return Err(Fatal::Message(format!("invalid mode `{}'", text()))),
            }
        }
        Opt::Interface => {
            // fastd ignores an invalid name given here without a word.
            if let Some(n) = InterfaceName::parse(v.as_bytes()) {
                loader.config_mut().interface = Some(n);
            }
        }
        Opt::Mtu => {
            let (n, whole) = c_strtol10(v.as_bytes());
            match u16::try_from(n) {
                Ok(m) if whole && m >= 576 => loader.config_mut().mtu = m,
                _ => return Err(Fatal::Message(format!("invalid mtu `{}'", text()))),
            }
        }
        Opt::Bind => {
            let b = parse_bind(v.as_bytes())?;
            loader.config_mut().binds.push(b);
        }
        Opt::Protocol => loader.set_protocol(&text())?,
        Opt::Method => loader.add_method(GroupId::ROOT, text()),
        Opt::Forward => loader.config_mut().forward = true,
        Opt::OnPreUp => loader.config_mut().on_pre_up = Some(hook(v, true, cwd)),
        Opt::OnPostDown => loader.config_mut().on_post_down = Some(hook(v, true, cwd)),
        Opt::OnUp | Opt::OnDown | Opt::OnConnect | Opt::OnEstablish | Opt::OnDisestablish => {
            let (kind, sync) = match opt {
                Opt::OnUp => (HookKind::Up, true),
                Opt::OnDown => (HookKind::Down, true),
                Opt::OnConnect => (HookKind::Connect, false),
                Opt::OnEstablish => (HookKind::Establish, false),
                _ => (HookKind::Disestablish, false),
            };
            if let Some(root) = loader.config_mut().groups.first_mut() {
                let h = &mut root.hooks;
                let slot = match kind {
                    HookKind::Up => &mut h.up,
                    HookKind::Down => &mut h.down,
                    HookKind::Connect => &mut h.connect,
                    HookKind::Establish => &mut h.establish,
                    HookKind::Disestablish => &mut h.disestablish,
                };
                *slot = Some(hook(v, sync, cwd));
            }
        }
        Opt::OnVerify => {
            loader.config_mut().on_verify = Some((hook(v, false, cwd), GroupId::ROOT));
        }
        Opt::VerifyConfig => modes.verify_config = true,
        Opt::GenerateKey => {
            modes.generate_key = true;
            modes.show_key = false;
        }
        Opt::ShowKey => {
            modes.show_key = true;
            modes.generate_key = false;
        }
        Opt::MachineReadable => modes.machine_readable = true,
    }
    Ok(())
}

/// C `strtol(s, &end, 10)`: the value (saturated) and whether `*end == '\0'`.
fn c_strtol10(s: &[u8]) -> (i64, bool) {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        i += 1;
    }
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let start = i;
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        let d = i64::from(d - b'0');
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
        i += 1;
    }
    if i == start {
        // No digits: strtol sets end to the start of the string.
        return (0, s.is_empty());
    }
    (v, i == s.len())
}

/// `--bind <addr>[:<port>]` as fastd v22 parses it.
fn parse_bind(arg: &[u8]) -> Result<Bind, Fatal> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let bad_addr = |b: &[u8]| Fatal::Message(format!("invalid bind address `{}'", lossy(b)));
    let (addr, port): (&[u8], Option<&[u8]>) = if arg.first() == Some(&b'[') {
        let close = arg
            .iter()
            .rposition(|b| *b == b']')
            .ok_or_else(|| bad_addr(arg))?;
        let inner = arg.get(1..close).unwrap_or_default();
        match arg.get(close + 1) {
            None => (inner, None),
            Some(b':') => (inner, Some(arg.get(close + 2..).unwrap_or_default())),
            Some(_) => return Err(bad_addr(arg)),
        }
    } else {
        match arg.iter().rposition(|b| *b == b':') {
            Some(c) => (
                arg.get(..c).unwrap_or_default(),
                Some(arg.get(c + 1..).unwrap_or_default()),
            ),
            None => (arg, None),
        }
    };
    let port = match port {
        Some(p) => {
            let (n, whole) = c_strtol10(p);
            match u16::try_from(n) {
                Ok(v) if whole => Some(v),
                _ => return Err(Fatal::Message(format!("invalid bind port `{}'", lossy(p)))),
            }
        }
        None => None,
    };
    let address = if arg.first() == Some(&b'[') {
        let (a, scope) = match addr.iter().position(|b| *b == b'%') {
            Some(p) => (
                addr.get(..p).unwrap_or_default(),
                Some(OsStr::from_bytes(addr.get(p + 1..).unwrap_or_default()).to_owned()),
            ),
            None => (addr, None),
        };
        let ip = std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
            .ok_or_else(|| Fatal::Message(format!("invalid bind address `[{}]'", lossy(a))))?;
        BindAddress::V6 { addr: ip, scope }
    } else if addr == b"any" {
        BindAddress::Any
    } else {
        let ip = std::str::from_utf8(addr)
            .ok()
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| bad_addr(addr))?;
        BindAddress::V4(ip)
    };
    Ok(Bind {
        address,
        port,
        interface: None,
        default_ipv4: false,
        default_ipv6: false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn strtol() {
        assert_eq!(c_strtol10(b"1400"), (1400, true));
        assert_eq!(c_strtol10(b"1400x"), (1400, false));
        assert_eq!(c_strtol10(b" +7"), (7, true));
        assert_eq!(c_strtol10(b""), (0, true));
        assert_eq!(c_strtol10(b"x"), (0, false));
        assert_eq!(c_strtol10(b"-3"), (-3, true));
    }

    #[test]
    fn bind_forms() {
        let b = parse_bind(b"[fe80::1%eth0]:5").ok().unwrap();
        assert_eq!(b.port, Some(5));
        assert!(matches!(b.address, BindAddress::V6 { scope: Some(_), .. }));
        assert_eq!(parse_bind(b"any").ok().unwrap().port, None);
        assert_eq!(parse_bind(b"1.2.3.4:").ok().unwrap().port, Some(0));
        assert_eq!(
            match parse_bind(b"[zz]:1") {
                Err(Fatal::Message(m)) => m,
                _ => String::new(),
            },
            "invalid bind address `[zz]'"
        );
    }
}
