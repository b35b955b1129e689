//! Typed messages and the sealed policy that cross the helper/worker boundary.
pub mod gateway;
