//! What conntrack says and keys on: the states (`ct state`), a flow's
//! tuple and its packed form, what a packet brings and what it gets back,
//! and the ICMP query types.

use super::{Pending, PROTO_ICMP};

/// Connection tracking states, as in netfilter's `ct state`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CtState {
    /// First packet of a flow not yet in the table.
    New = 0,
    /// Packet of a flow that has seen traffic (or is continuing its handshake).
    Established = 1,
    /// ICMP error about a tracked flow.
    Related = 2,
    /// Tracked, but fits no flow and starts none.
    Invalid = 3,
    /// Marked `notrack` in the raw stage: conntrack never saw it.
    #[default]
    Untracked = 4,
}

impl CtState {
    /// Bit of this state in a [`crate::rules::Match::state`] mask.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Lower-case name as in config and output.
    pub const fn name(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }
}

/// A flow's tuple in the direction of the packet that carries it. For ICMP
/// queries both ports hold the query identifier and `icmp` the type and
/// code (`type << 8 | code`), as netfilter's ICMP tuple: the reply's tuple
/// is the reverse of the request's, with the reply type (an echo request
/// and an echo reply the other way are one flow; two echo requests with
/// one identifier, one each way, are two flows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// ICMP queries: `type << 8 | code`; 0 for other protocols.
    pub icmp: u16,
}

impl FlowKey {
    /// The tuple of the other direction.
    #[inline]
    pub const fn reverse(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
            icmp: if self.proto == PROTO_ICMP {
                ((icmp_inverse((self.icmp >> 8) as u8) as u16) << 8) | (self.icmp & 0xff)
            } else {
                self.icmp
            },
        }
    }

    /// The tuple in two words, as the table stores, hashes and compares
    /// it: `src dst` above, `sport dport 0 icmp proto` below.
    #[inline(always)]
    pub(super) const fn pack(self) -> u128 {
        ((self.src as u128) << 96)
            | ((self.dst as u128) << 64)
            | ((self.sport as u128) << 48)
            | ((self.dport as u128) << 32)
            | ((self.icmp as u128) << 8)
            | self.proto as u128
    }

    /// The tuple [`FlowKey::pack`] packed.
    #[inline]
    pub(super) const fn unpack(p: u128) -> FlowKey {
        FlowKey {
            src: (p >> 96) as u32,
            dst: (p >> 64) as u32,
            sport: (p >> 48) as u16,
            dport: (p >> 32) as u16,
            icmp: (p >> 8) as u16,
            proto: p as u8,
        }
    }
}

/// [`FlowKey::reverse`] of a packed tuple: the addresses and the ports
/// swap, and an ICMP query's type is the answering one.
#[inline(always)]
pub(super) const fn reverse_packed(p: u128) -> u128 {
    let addrs = ((p >> 64) as u64).rotate_left(32);
    let ports = ((p >> 32) as u32).rotate_left(16);
    let mut low = p as u32;
    if low as u8 == PROTO_ICMP {
        let t = icmp_inverse((low >> 16) as u8);
        low = (t as u32) << 16 | (low & 0xffff);
    }
    ((addrs as u128) << 64) | ((ports as u128) << 32) | low as u128
}

/// What conntrack needs to know of a packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct PktInfo {
    /// The packet's tuple.
    pub key: FlowKey,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMP type (queries only; errors go through [`Conntrack::related`]).
    pub icmp_type: u8,
    /// IP total length, for byte counters.
    pub len: u16,
}

/// Where a packet stands with its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtResult {
    /// The packet's state, as `ct state` matches it.
    pub state: CtState,
    /// The flow, when there is one in the table.
    pub flow: Option<FlowRef>,
    /// The flow to insert if the filter accepts this NEW packet.
    pub pending: Option<Pending>,
}

impl CtResult {
    pub(super) const INVALID: CtResult = CtResult {
        state: CtState::Invalid,
        flow: None,
        pending: None,
    };
}

/// A flow in the table and the packet's direction in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRef {
    /// Entry index.
    pub index: u32,
    /// Whether the packet goes in the reply direction.
    pub reply: bool,
}

/// The query type answering `t` (a request's reply, a reply's request),
/// as netfilter's `invmap`; other types map to themselves.
#[inline]
pub const fn icmp_inverse(t: u8) -> u8 {
    match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        17 => 18,
        18 => 17,
        t => t,
    }
}

/// ICMP query types that start a flow (echo, timestamp, info, address mask).
#[inline]
pub const fn is_icmp_request(t: u8) -> bool {
    matches!(t, 8 | 13 | 15 | 17)
}

/// ICMP query replies.
#[inline]
pub const fn is_icmp_reply(t: u8) -> bool {
    matches!(t, 0 | 14 | 16 | 18)
}
