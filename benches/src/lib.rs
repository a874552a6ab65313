//! Shared helpers for the benches and throughput tools.

pub mod linerate;
pub mod rng;
pub mod workload;
