//! Sockets and interfaces: registering descriptors with the loop, opening and closing
//! per-peer interfaces through the provider.

use super::*;

impl<P: Provider> Engine<P> {
    pub(super) fn add_socket(
        &mut self,
        fd: OwnedFd,
        bound: Option<SocketAddr>,
        peer: Option<PeerId>,
    ) -> std::io::Result<usize> {
        io::prepare_udp_socket(fd.as_fd())?;
        if gro_mode(self.settings.mode) && !io::enable_gro(fd.as_fd()) {
            self.log.log(LogLevel::Debug, || {
                "UDP GRO refused by the kernel".to_owned()
            });
        }
        let v6 = match bound {
            Some(a) => a.is_ipv6(),
            None => socket_is_v6(&fd),
        };
        let idx = self.sockets.len();
        epoll_add(
            self.epoll.as_raw_fd(),
            fd.as_raw_fd(),
            TOKEN_SOCK | idx as u64,
        )?;
        if let Some(b) = bound {
            self.log
                .log(LogLevel::Info, || format!("bound to {}", fmt_bind(&b)));
        }
        let local = socket_name(&fd);
        self.sockets.push(Some(Sock {
            fd,
            bound,
            v6,
            peer,
            local,
        }));
        Ok(idx)
    }

    pub(super) fn add_iface(
        &mut self,
        iface: Iface,
        mtu: u16,
        peer: Option<PeerId>,
    ) -> Result<usize, EngineError> {
        io::set_nonblocking(iface.fd.as_raw_fd()).map_err(EngineError::Iface)?;
        let idx = self.ifaces.len();
        epoll_add(
            self.epoll.as_raw_fd(),
            iface.fd.as_raw_fd(),
            TOKEN_IFACE | idx as u64,
        )
        .map_err(EngineError::Epoll)?;
        let vnet = iface.offload.is_some();
        if let Some(flags) = iface.offload {
            self.log.log(LogLevel::Debug, || {
                format!(
                    "interface `{}': virtio-net header, offloads {flags:#x}",
                    iface.name
                )
            });
        }
        if vnet && self.gro.is_none() {
            self.gro = Some(Box::default());
        }
        if vnet && self.vnet_buf.is_empty() {
            self.vnet_buf = vec![0u8; offload::vnet::LEN + offload::MAX_SUPER].into_boxed_slice();
        }
        self.ifaces.push(Some(IfaceSlot {
            fd: iface.fd,
            name: iface.name,
            mtu,
            peer,
            vnet,
        }));
        Ok(idx)
    }

    pub(super) fn open_interfaces(&mut self, tap: Option<Iface>) -> Result<(), EngineError> {
        match self.settings.mode {
            Mode::Tap => {
                let (iface, opened) = match tap {
                    Some(i) => (i, false),
                    None => {
                        let req = IfaceRequest {
                            name: self.settings.tap_name.clone(),
                            kind: IfaceKind::Tap,
                            mtu: self.settings.mtu,
                            peer: None,
                            owner: None,
                        };
                        (
                            self.provider.open_iface(&req).map_err(EngineError::Iface)?,
                            true,
                        )
                    }
                };
                let idx = self.add_iface(iface, self.settings.mtu, None)?;
                self.tap = Some(idx);
                if opened {
                    self.run_hook(HookKind::Up, None);
                }
            }
            Mode::Tun | Mode::Multitap => {
                if !self.settings.persist_interface {
                    return Ok(());
                }
                // fastd creates persistent peer interfaces in reverse order of definition.
                let ids: Vec<PeerId> = self.peers.ids().collect();
                for id in ids.into_iter().rev() {
                    self.open_peer_iface(id)?;
                }
            }
        }
        Ok(())
    }

    /// Closes a peer's per-connection socket: fastd opens a new one (new random port) for
    /// the next connection attempt after a connection loss.
    pub(super) fn close_peer_socket(&mut self, id: PeerId) {
        let Some(idx) = self
            .sockets
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.peer == Some(id)))
        else {
            return;
        };
        if let Some(sock) = self.sockets.get_mut(idx).and_then(Option::take) {
            // SAFETY: removing a descriptor we own from our epoll set; no memory is passed.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    sock.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
        if let Some(p) = self.peers.get_mut(id) {
            if p.socket == Some(idx) {
                p.socket = None;
            }
        }
    }

    pub(super) fn iface_at(&self, idx: usize) -> Option<&IfaceSlot> {
        self.ifaces.get(idx).and_then(Option::as_ref)
    }

    /// Destroys a peer's interface (non-persistent or dynamic peers at reset): `down` hook
    /// first, then the descriptor is closed, which removes a non-persistent device.
    pub(super) fn close_peer_iface(&mut self, id: PeerId) {
        let Some(idx) = self.peers.get(id).and_then(|p| p.iface) else {
            return;
        };
        // A run being coalesced for this device goes before the device does.
        self.flush_gro();
        self.run_hook(HookKind::Down, Some(id));
        if let Some(slot) = self.ifaces.get_mut(idx).and_then(Option::take) {
            // SAFETY: removing a descriptor we own from our epoll set; no memory is passed.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    slot.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            self.provider.close_iface(&slot.name);
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.iface = None;
        }
    }

    pub(super) fn open_peer_iface(&mut self, id: PeerId) -> Result<(), EngineError> {
        let Some(p) = self.peers.get(id) else {
            return Ok(());
        };
        if p.iface.is_some() {
            return Ok(());
        }
        let req = IfaceRequest {
            name: p.params.ifname.clone(),
            kind: if self.settings.mode == Mode::Tun {
                IfaceKind::Tun
            } else {
                IfaceKind::Tap
            },
            mtu: p.params.mtu,
            peer: Some(id),
            owner: Some((p.params.key, p.params.name.clone())),
        };
        let iface = self.provider.open_iface(&req).map_err(EngineError::Iface)?;
        let idx = self.add_iface(iface, req.mtu, Some(id))?;
        if let Some(p) = self.peers.get_mut(id) {
            p.iface = Some(idx);
        }
        self.run_hook(HookKind::Up, Some(id));
        Ok(())
    }
}
