//! What conntrack says and keys on: the states (`ct state`), a flow's
//! tuple and its packed form (IPv4 and IPv6), what a packet brings and what
//! it gets back, and the ICMP and ICMPv6 query types.

use super::{Pending, PROTO_ICMP, PROTO_ICMPV6};

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

/// In a packed tuple, the byte above `icmp` (zero for IPv4): an IPv6 flow.
/// An IPv4 tuple never equals an IPv6 one, whatever their addresses.
pub(super) const FAMILY6: u128 = 1 << 24;

/// The high 96 bits of an IPv6 flow's source and destination, which its
/// packed tuple has no room for: the table keeps them in a side array
/// indexed like its entries, as
/// `[src >> 64, dst >> 64, (src >> 32) as u32 << 32 | (dst >> 32) as u32]`:
/// three word compares find a flow, and the other direction's is
/// [`reverse_high6`].
pub(super) type High6 = [u64; 3];

/// A flow's IPv6 tuple, as [`FlowKey`] (addresses are `u128`, big-endian
/// numeric: `u128::from_be_bytes(addr_bytes)`). ICMPv6 echo is keyed as
/// ICMP echo: the identifier in both ports, `type << 8 | code` in `icmp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey6 {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// ICMPv6 queries: `type << 8 | code`; 0 for other protocols.
    pub icmp: u16,
}

impl FlowKey6 {
    /// The tuple of the other direction (an echo request's is the reply's).
    #[inline]
    pub const fn reverse(self) -> FlowKey6 {
        FlowKey6 {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
            icmp: if self.proto == PROTO_ICMPV6 {
                ((icmpv6_inverse((self.icmp >> 8) as u8) as u16) << 8) | (self.icmp & 0xff)
            } else {
                self.icmp
            },
        }
    }

    /// The packed tuple, as [`FlowKey::pack`] with the low 32 bits of each
    /// address and [`FAMILY6`] set; the rest of the addresses is
    /// [`FlowKey6::high`].
    #[inline(always)]
    pub(super) const fn pack(self) -> u128 {
        FlowKey {
            src: self.src as u32,
            dst: self.dst as u32,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            icmp: self.icmp,
        }
        .pack()
            | FAMILY6
    }

    /// The high 96 bits of the source and the destination.
    #[inline(always)]
    pub(super) const fn high(self) -> High6 {
        [
            (self.src >> 64) as u64,
            (self.dst >> 64) as u64,
            ((self.src >> 32) as u32 as u64) << 32 | (self.dst >> 32) as u32 as u64,
        ]
    }

    /// The tuple [`FlowKey6::pack`] and [`FlowKey6::high`] split.
    #[inline]
    pub(super) const fn unpack(p: u128, high: High6) -> FlowKey6 {
        let k = FlowKey::unpack(p);
        FlowKey6 {
            src: join6(high, false, k.src),
            dst: join6(high, true, k.dst),
            sport: k.sport,
            dport: k.dport,
            proto: k.proto,
            icmp: k.icmp,
        }
    }
}

/// An IPv6 source (or destination, `dst`) address from its tuple's
/// [`FlowKey6::high`] and its low word.
#[inline(always)]
pub(super) const fn join6(high: High6, dst: bool, low: u32) -> u128 {
    let (top, mid) = if dst {
        (high[1], high[2] as u32)
    } else {
        (high[0], (high[2] >> 32) as u32)
    };
    (top as u128) << 64 | (mid as u128) << 32 | low as u128
}

/// The [`FlowKey6::high`] of the other direction's tuple.
#[inline(always)]
pub(super) const fn reverse_high6(h: High6) -> High6 {
    [h[1], h[0], h[2].rotate_left(32)]
}

/// [`FlowKey6::reverse`] of a packed IPv6 tuple (of its packed part; the
/// high parts swap).
#[inline(always)]
pub(super) const fn reverse_packed6(p: u128) -> u128 {
    let addrs = ((p >> 64) as u64).rotate_left(32);
    let ports = ((p >> 32) as u32).rotate_left(16);
    let mut low = p as u32;
    if low as u8 == PROTO_ICMPV6 {
        let t = icmpv6_inverse((low >> 16) as u8);
        low = (t as u32) << 16 | (low & 0xff00_ffff);
    }
    ((addrs as u128) << 64) | ((ports as u128) << 32) | low as u128
}

/// What conntrack needs to know of an IPv6 packet, as [`PktInfo`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PktInfo6 {
    /// The packet's tuple.
    pub key: FlowKey6,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMPv6 type (queries only; errors go through [`Conntrack::related6`]).
    pub icmp_type: u8,
    /// IPv6 payload length plus the fixed header, for byte counters.
    pub len: u16,
}

/// The ICMPv6 query type answering `t` (echo request and reply); other
/// types map to themselves.
#[inline]
pub const fn icmpv6_inverse(t: u8) -> u8 {
    match t {
        128 => 129,
        129 => 128,
        t => t,
    }
}

/// ICMPv6 query types that start a flow (echo request).
#[inline]
pub const fn is_icmpv6_request(t: u8) -> bool {
    t == 128
}

/// ICMPv6 query replies (echo reply).
#[inline]
pub const fn is_icmpv6_reply(t: u8) -> bool {
    t == 129
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
