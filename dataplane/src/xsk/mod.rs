//! AF_XDP ports: the XDP redirect program, the UMEM, the four rings and the
//! per-worker port set, over raw `libc` calls.
//!
//! This module owns every `unsafe` line of the crate: raw `bpf(2)` and
//! socket-option calls, ring and UMEM mappings, and the hand-out of frame
//! buffers to the pipeline. Each `unsafe` block says why it holds.
//!
//! Layout: [`bpf`] loads and attaches the 6-instruction XDP program that
//! redirects a queue into an XSKMAP slot; [`umem`] maps the frame area;
//! [`ring`] is the single-producer/single-consumer ring shared with the
//! kernel; [`socket`] builds an AF_XDP socket on a (possibly shared) UMEM;
//! [`port`] is what a worker uses: one UMEM, N ports, a free-frame stack;
//! [`tun`] is the TUN device of the host path; [`tsc`] reads the CPU's
//! time-stamp counter for the workers' runtime accounting; [`ethtool`] makes the few
//! `SIOCETHTOOL` requests (TX checksum offload, channel counts); [`fake`]
//! plays the kernel's side of the rings in memory, for tests of behaviour
//! veth never shows (zero-copy drivers' NEED_WAKEUP, failing kicks, links
//! going down).
//!
//! Never on the packet path: allocation, locks, or a syscall per packet (the
//! only syscalls are one TX kick per burst and wake-ups the kernel asks for
//! through the rings' NEED_WAKEUP flag).

#![allow(unsafe_code)]

pub mod bpf;
mod error;
pub mod ethtool;
pub mod fake;
pub mod port;
pub mod ring;
mod socket;
pub mod stats;
pub mod tsc;
pub mod tun;
pub mod umem;

pub use bpf::{CounterProgram, XdpMode, XdpProgram};
pub use error::{IfName, XskError, XskStep};
pub use port::{
    BindMode, FrameCensus, FrameRef, FramesMut, PortConfig, PortStats, PortsStats, TxResult,
    WorkerPorts, XdpStatistics,
};
