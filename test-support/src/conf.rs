//! A fastd config builder in the style of the tutorial (docs/tutorial.md).

/// A fastd config in the style of the tutorial. `listen` = bind address, `peers` = (name, key,
/// remote) lines, `tunnel` = the node's tunnel address/prefix.
pub struct ConfBuilder {
    pub mode: &'static str,
    pub methods: Vec<String>,
    pub secret: String,
    pub mtu: u16,
    pub bind: Option<String>,
    pub interface: String,
    pub tunnel: String,
    pub peers: Vec<(String, String, Option<String>)>,
    pub extra: String,
}

impl ConfBuilder {
    pub fn new(mode: &'static str, method: &str, secret: &str, tunnel: &str) -> ConfBuilder {
        ConfBuilder {
            mode,
            methods: vec![method.to_owned()],
            secret: secret.to_owned(),
            mtu: if mode == "tun" { 1448 } else { 1434 },
            bind: None,
            interface: "vpngateway".to_owned(),
            tunnel: tunnel.to_owned(),
            peers: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn peer(mut self, name: &str, key: &str, remote: Option<&str>) -> Self {
        self.peers
            .push((name.to_owned(), key.to_owned(), remote.map(str::to_owned)));
        self
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s += "log level debug2;\n";
        s += &format!("mode {};\n", self.mode);
        s += &format!("interface \"{}\";\n", self.interface);
        for m in &self.methods {
            s += &format!("method \"{m}\";\n");
        }
        if let Some(b) = &self.bind {
            s += &format!("bind {b};\n");
        }
        s += &format!("secret \"{}\";\n", self.secret);
        s += &format!("mtu {};\n", self.mtu);
        s += &format!(
            "on up \"ip link set $INTERFACE up; ip addr add {} dev $INTERFACE\";\n",
            self.tunnel
        );
        s += &self.extra;
        for (name, key, remote) in &self.peers {
            s += &format!("peer \"{name}\" {{\n  key \"{key}\";\n");
            if let Some(r) = remote {
                s += &format!("  remote {r};\n");
            }
            s += "}\n";
        }
        s
    }
}

/// Where the tutorial's alpha listens.
pub const GATEWAY: &str = "198.51.100.1:10000";

impl ConfBuilder {
    /// The tutorial's alpha (key pair 0 of `testdata/keys.txt`): listens on [`GATEWAY`],
    /// tunnel 172.16.16.1/24, one peer `anyremote` (key pair 1).
    pub fn alpha(mode: &'static str, method: &str) -> ConfBuilder {
        let keys = crate::keys::keypairs();
        ConfBuilder::alpha_at(mode, method, GATEWAY, &keys[0].0, &keys[1].1)
    }

    /// The tutorial's anyremote (key pair 1): tunnel 172.16.16.2/24, connects to
    /// [`ConfBuilder::alpha`].
    pub fn anyremote(mode: &'static str, method: &str) -> ConfBuilder {
        let keys = crate::keys::keypairs();
        ConfBuilder::anyremote_of(mode, method, GATEWAY, &keys[1].0, &keys[0].1)
    }

    /// Alpha with its own `secret`, listening on `gateway`, with the peer `anyremote`.
    pub fn alpha_at(
        mode: &'static str,
        method: &str,
        gateway: &str,
        secret: &str,
        anyremote_public: &str,
    ) -> ConfBuilder {
        let mut a = ConfBuilder::new(mode, method, secret, "172.16.16.1/24");
        a.bind = Some(gateway.into());
        a.peer("anyremote", anyremote_public, None)
    }

    /// Anyremote with its own `secret`, connecting to alpha at `gateway`.
    pub fn anyremote_of(
        mode: &'static str,
        method: &str,
        gateway: &str,
        secret: &str,
        alpha_public: &str,
    ) -> ConfBuilder {
        ConfBuilder::new(mode, method, secret, "172.16.16.2/24").peer(
            "alpha",
            alpha_public,
            Some(gateway),
        )
    }
}

/// The config of a client in the tutorial's style for the end-to-end tests: `log level
/// verbose`, salsa2012+umac, anyremote's secret, `settings` (mode, interface, MTU, address,
/// hooks: one statement a line), and alpha's key as its one peer `peer` at `remote`.
pub fn client_conf(settings: &str, peer: &str, remote: &str) -> String {
    use crate::keys::{ALPHA_PUBLIC, AR_SECRET};
    format!(
        "log level verbose;\nmethod \"salsa2012+umac\";\nsecret \"{AR_SECRET}\";\n{settings}\
         peer \"{peer}\" {{ key \"{ALPHA_PUBLIC}\"; remote {remote}; }}\n"
    )
}
