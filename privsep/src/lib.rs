//! The root helper: the only privileged process of fastd-privsep.
pub mod gateway;
