//! `linerate`: an AF_XDP traffic generator and sink, and an RFC 2544
//! throughput search, for measuring a router between two network
//! namespaces (or two NICs).
//!
//! - [`frame`]: test frames (Ethernet/IPv4/UDP + magic, flow, sequence,
//!   timestamp), flows in 198.18.0.0/15, frame sizes and IMIX.
//! - [`pacing`]: the token bucket, in bursts of up to 64.
//! - [`gen`]: the generator (AF_XDP TX).
//! - [`sink`]: the sink (AF_XDP RX with per-flow checks, or the XDP
//!   program of [`count`] that counts and drops).
//! - [`track`], [`histogram`]: per-flow loss, order and latency.
//! - [`handles`]: generator and sink on threads in their namespaces.
//! - [`rfc2544`]: the throughput search.
//! - [`compare`]: the namespace lab, the search and the fixed-rate cost
//!   phase over routerd, Linux and Open vSwitch; [`cpu`] reads CPU time,
//!   [`ovs`] runs Open vSwitch, [`runtime`] reads routerd's accounting.
//! - [`tcp`]: bulk TCP through the lab, routerd against Linux.
//!
//! Every run is bounded in time; nothing here sends outside the interface
//! it is given.

pub mod chart;
pub mod compare;
pub mod count;
pub mod cpu;
pub mod frame;
pub mod gen;
pub mod handles;
pub mod histogram;
pub mod ovs;
pub mod pacing;
pub mod rfc2544;
pub mod runtime;
pub mod sink;
pub mod tcp;
pub mod track;

use dataplane::xsk::XskError;

/// Why a `linerate` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinerateError {
    /// An argument is out of range.
    #[error("{0}")]
    Config(String),
    /// An AF_XDP port or XDP program could not be set up.
    #[error("{0}")]
    Xsk(#[from] XskError),
    /// Threads, namespaces, CPU pinning or a helper command failed.
    #[error("{0}")]
    Setup(String),
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process and
/// network namespace of the machine, so a generator and a sink on one
/// machine can compare stamps.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux: the call cannot fail.
    let ts =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_clock_advances() {
        let a = super::monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::monotonic_ns();
        assert!(b >= a + 2_000_000, "{a} -> {b}");
    }
}
