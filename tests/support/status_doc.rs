//! The status document's shape against one recorded from fastd v22 (testdata/status): the
//! same keys and the same JSON type for every value, recursively. Exporters deny unknown
//! fields, so a key fastd does not write is as wrong as a missing one.

use serde_json::{Map, Value};
use std::path::Path;

/// A recorded fastd document.
pub fn recorded(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/status")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Parses our document and checks its shape against fastd's; the error names the path.
pub fn assert_same_shape(ours: &str, fastd: &Value) {
    let doc: Value = serde_json::from_str(ours)
        .unwrap_or_else(|e| panic!("not a JSON document ({e}): {ours:?}"));
    if let Err(e) = shape(&doc, fastd, "") {
        panic!("{e}\nours:  {ours}\nfastd: {fastd}");
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() => "unsigned",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape(ours: &Value, fastd: &Value, path: &str) -> Result<(), String> {
    match (ours, fastd) {
        (Value::Object(o), Value::Object(f)) if path == "/peers" => peers(o, f),
        (Value::Object(o), Value::Object(f)) => {
            let ok: Vec<&String> = o.keys().collect();
            let fk: Vec<&String> = f.keys().collect();
            if ok.iter().any(|k| !f.contains_key(*k)) || fk.iter().any(|k| !o.contains_key(*k)) {
                return Err(format!("{path}: keys {ok:?}, fastd has {fk:?}"));
            }
            o.iter()
                .try_for_each(|(k, v)| shape(v, &f[k], &format!("{path}/{k}")))
        }
        (Value::Array(o), Value::Array(f)) => match f.first() {
            Some(t) => o
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| shape(v, t, &format!("{path}/{i}"))),
            None => Ok(()),
        },
        _ if kind(ours) == kind(fastd) => Ok(()),
        _ => Err(format!(
            "{path}: {} ({ours}), fastd has {} ({fastd})",
            kind(ours),
            kind(fastd)
        )),
    }
}

/// `peers` is keyed by public key: each of ours against fastd's peer of the same kind (named
/// or not), so a dynamic peer's `"name": null` meets a null.
fn peers(ours: &Map<String, Value>, fastd: &Map<String, Value>) -> Result<(), String> {
    for (key, peer) in ours {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("/peers: key {key:?} is not a public key"));
        }
        let named = |p: &Value| p.get("name").is_some_and(|n| !n.is_null());
        let template = fastd
            .values()
            .find(|f| named(f) == named(peer))
            .ok_or_else(|| format!("/peers/{key}: fastd's document has no such peer"))?;
        shape(peer, template, &format!("/peers/{key}"))?;
    }
    Ok(())
}

/// `n` clients connect to the status socket at once (all started before any is waited for);
/// what each one read. socat's `-T 5` bounds every client.
pub fn fetch_at_once(ns: &super::Netns, sock: &Path, n: usize) -> Vec<String> {
    use std::process::{Command, Stdio};
    let target = format!("UNIX-CONNECT:{}", sock.display());
    let clients: Vec<_> = (0..n)
        .map(|_| {
            Command::new("ip")
                .args(["netns", "exec", &ns.0, "socat", "-T", "5", "-", &target])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    clients
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned())
        .collect()
}
