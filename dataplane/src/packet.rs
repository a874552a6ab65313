//! The burst interface between ports (AF_XDP, TUN, in-memory tests) and the
//! pipeline: a frame in, a verdict out.
//!
//! A frame is an Ethernet frame in a buffer that may be longer than the frame
//! (`buf.len()` is the capacity, `len` the frame). The pipeline rewrites the
//! frame in place (TTL, checksum, MACs) and may replace it with a generated
//! reply (ARP reply, ICMP error, TCP RST) built in the same buffer, so that a
//! zero-copy port never has to allocate a frame on the packet path.
//!
//! Frames from the host path (TUN) carry a placeholder Ethernet header with
//! ethertype IPv4 in front of the IP packet; frames delivered to the host
//! are written to the TUN from offset [`ETH_HDR_LEN`] on.

use crate::drop::DropReason;

/// Bytes of an untagged Ethernet header.
pub const ETH_HDR_LEN: usize = 14;

/// A port index: interfaces are numbered in config order from 0; the host
/// path has its own id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u8);

impl PortId {
    /// The host path (TUN): the router's own traffic.
    pub const HOST: PortId = PortId(63);
    /// Most interfaces a router may have (ports are bits of a `u64` mask with
    /// the host path in the top bit).
    pub const MAX_PORTS: usize = 63;

    /// Whether this is the host path.
    pub const fn is_host(self) -> bool {
        self.0 == Self::HOST.0
    }

    /// The bit for this port in a port mask.
    pub const fn bit(self) -> u64 {
        1u64 << (self.0 & 63)
    }
}

/// One frame of a burst.
pub struct Pkt<'a> {
    /// The frame buffer; the frame is `buf[..len]`, the rest is room for a
    /// generated reply.
    pub buf: &'a mut [u8],
    /// Frame length in bytes.
    pub len: usize,
    /// Port the frame arrived on ([`PortId::HOST`] for the host path).
    pub port: PortId,
}

/// What to do with a frame after the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit `buf[..len]` on this port (a forwarded packet or a reply
    /// generated in place).
    Tx(PortId),
    /// Deliver to the host path: write `buf[ETH_HDR_LEN..len]` to the TUN.
    Host,
    /// Free the frame: it was handled and nothing is sent (an ARP reply
    /// that updated the neighbour table, a packet queued elsewhere).
    Consumed,
    /// Free the frame; the reason was counted.
    Drop(DropReason),
    /// A tracked packet whose flow another worker owns
    /// ([`crate::owner`]): hand the frame's bytes to that worker, which
    /// runs them through its pipeline. Nothing was counted here.
    HandOff(u8),
}
