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

impl ConfBuilder {
    /// The tutorial's alpha (key pair 0 of `testdata/keys.txt`): listens on
    /// 198.51.100.1:10000, tunnel 172.16.16.1/24, one peer `anyremote` (key pair 1).
    pub fn alpha(mode: &'static str, method: &str) -> ConfBuilder {
        let keys = crate::keys::keypairs();
        let mut a = ConfBuilder::new(mode, method, &keys[0].0, "172.16.16.1/24");
        a.bind = Some("198.51.100.1:10000".into());
        a.peer("anyremote", &keys[1].1, None)
    }

    /// The tutorial's anyremote (key pair 1): tunnel 172.16.16.2/24, connects to
    /// [`ConfBuilder::alpha`] at 198.51.100.1:10000.
    pub fn anyremote(mode: &'static str, method: &str) -> ConfBuilder {
        let keys = crate::keys::keypairs();
        ConfBuilder::new(mode, method, &keys[1].0, "172.16.16.2/24").peer(
            "alpha",
            &keys[0].1,
            Some("198.51.100.1:10000"),
        )
    }
}
