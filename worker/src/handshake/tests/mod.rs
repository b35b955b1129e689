//! Tests of the handshake: replay of the real-fastd vectors and behaviour rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod behaviour;
mod support;
mod vectors;
