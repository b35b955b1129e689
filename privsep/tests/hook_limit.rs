#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Asynchronous hooks are capped: a worker that asks for more than `MAX_ASYNC_HOOKS` at
//! once is told `Busy` until some have been reaped, and `HooksFree` when one is. Its own
//! test binary, because it reaps with waitpid(-1) as the helper does.

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use policy::*;
use privsep::{Helper, MAX_ASYNC_HOOKS};
use std::time::{Duration, Instant};
use test_support::manifest;

const KEY: [u8; 32] = [0x25; 32];

/// Each test reaps with waitpid(-1): they must not run at the same time.
static REAPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn manifest(dir: &str) -> Manifest {
    let mut m = manifest::one_hook(dir, HookKind::Establish, "sleep 0.5");
    m.interface = IfNamePattern::new("fpslim0").unwrap();
    m.peers = vec![manifest::alpha_peer()];
    m.hooks[0].sync = false;
    m
}

fn establish() -> Vec<u8> {
    encode(&Request::RunHook {
        hook: HookId(0),
        env: HookEnv {
            peer_key: Some(PublicKey(KEY)),
            peer_name: Some(PeerName::new("alpha").unwrap()),
            local: Some("192.0.2.1:10000".parse().unwrap()),
            peer: Some("192.0.2.2:50607".parse().unwrap()),
            ..HookEnv::default()
        },
    })
    .unwrap()
}

#[test]
fn async_hooks_are_capped_until_reaped() {
    let _one = REAPING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helper::new(vec![], 1);
    let m = manifest(dir.path().to_str().unwrap());
    let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(m))).unwrap());
    assert_eq!(r, Response::Sealed);
    for i in 0..MAX_ASYNC_HOOKS {
        let (r, _) = h.handle_bytes(&establish());
        assert_eq!(r, Response::HookDone { status: None }, "hook {i}");
    }
    // A typed "busy": the worker keeps the hook and asks again when a slot frees.
    assert_eq!(h.handle_bytes(&establish()).0, Response::Busy);
    // Reap them as the helper's SIGCHLD handling does; then hooks run again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reaped = 0;
    while reaped < MAX_ASYNC_HOOKS && Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(s) => {
                if let Some(pid) = s.pid() {
                    let code = match s {
                        WaitStatus::Exited(_, c) => Some(c),
                        _ => None,
                    };
                    // Not a verify: the worker hears only that a slot is free, once
                    // after each `Busy`.
                    let told = h.child_finished(pid.as_raw().unsigned_abs(), code, None);
                    let want = (reaped == 0).then_some(Notice::HooksFree);
                    assert_eq!(told, want, "reaped {reaped}");
                    reaped += 1;
                }
            }
            Err(e) => panic!("waitpid: {e}"),
        }
    }
    assert_eq!(reaped, MAX_ASYNC_HOOKS);
    assert_eq!(
        h.handle_bytes(&establish()).0,
        Response::HookDone { status: None }
    );
    // Let the last one finish while its directory still exists.
    let _ = waitpid(Pid::from_raw(-1), None);
}

/// Reaps children until `n` have finished, as the helper's SIGCHLD handling does, and
/// returns what the helper would send to the worker for them.
fn reap(h: &mut Helper, n: usize) -> Vec<Notice> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut done, mut out) = (0, Vec::new());
    while done < n && Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(s) => {
                let Some(pid) = s.pid() else { continue };
                let code = match s {
                    WaitStatus::Exited(_, c) => Some(c),
                    _ => None,
                };
                out.extend(h.child_finished(pid.as_raw().unsigned_abs(), code, None));
                done += 1;
            }
            Err(e) => panic!("waitpid: {e}"),
        }
    }
    assert_eq!(done, n);
    out
}

/// fastd's default `on verify` is asynchronous: the helper answers at once, and the
/// verdict follows as a notice when the command ends; at most 32 run at once.
#[test]
fn asynchronous_verify_reports_its_verdict_later_and_is_capped() {
    let _one = REAPING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest(dir.path().to_str().unwrap());
    m.dynamic_peers = true;
    m.hooks = vec![HookSpec {
        kind: HookKind::Verify,
        // Accepts one key, refuses the others.
        command: HookCommand::new(&format!(
            "sleep 0.3; test \"$PEER_KEY\" = {}",
            "77".repeat(32)
        ))
        .unwrap(),
        sync: false,
        cwd: AbsPath::new(dir.path().to_str().unwrap()).unwrap(),
    }];
    let mut h = Helper::new(vec![], 1);
    let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(m))).unwrap());
    assert_eq!(r, Response::Sealed);
    let verify = |key: u8| {
        encode(&Request::RunHook {
            hook: HookId(0),
            env: HookEnv {
                peer_key: Some(PublicKey([key; 32])),
                local: Some("192.0.2.1:10000".parse().unwrap()),
                peer: Some("192.0.2.2:50607".parse().unwrap()),
                ..HookEnv::default()
            },
        })
        .unwrap()
    };
    assert_eq!(h.handle_bytes(&verify(0x77)).0, Response::VerifyPending);
    assert_eq!(h.handle_bytes(&verify(0x66)).0, Response::VerifyPending);
    let mut verdicts = reap(&mut h, 2);
    verdicts.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        verdicts,
        vec![
            Notice::VerifyDone {
                key: PublicKey([0x66; 32]),
                accepted: false
            },
            Notice::VerifyDone {
                key: PublicKey([0x77; 32]),
                accepted: true
            },
        ]
    );
    for i in 0..32u8 {
        assert_eq!(h.handle_bytes(&verify(i)).0, Response::VerifyPending, "{i}");
    }
    match h.handle_bytes(&verify(0x55)).0 {
        Response::Refused { reason } => assert!(reason.contains("maximum number"), "{reason}"),
        other => panic!("a 33rd verify ran: {other:?}"),
    }
    assert_eq!(reap(&mut h, 32).len(), 32);
}
