//! Shared helpers for the benches and throughput tools.

pub mod rng;
pub mod workload;
pub mod linerate;
