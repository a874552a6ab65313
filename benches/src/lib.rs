//! Shared helpers for the benches and throughput tools.

pub mod linerate;
pub mod prefix6;
pub mod rng;
pub mod workload;
