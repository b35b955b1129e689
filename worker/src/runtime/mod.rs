//! The worker after start-up.

pub mod gateway;
