//! Per-packet metadata: what the stages learned about a packet, so no
//! stage parses twice. A leaf: every stage reads it, it knows no stage.

use crate::conntrack::CtState;
use crate::packet::PortId;

/// What the stages learned about a packet, so no stage parses twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    /// Arrival port.
    pub in_port: PortId,
    /// Output port once routed ([`PortId::HOST`] for local delivery).
    pub out_port: Option<PortId>,
    /// IP header length in bytes.
    pub ihl: usize,
    /// IP total length.
    pub total_len: usize,
    /// IPv4 source and destination (0 for IPv6).
    pub src: u32,
    pub dst: u32,
    /// An IPv6 packet: `src6`/`dst6` hold its addresses, `ttl` its hop
    /// limit, `ihl` the offset of the upper-layer header (40 plus the
    /// extension headers) and `total_len` 40 plus the payload length.
    pub v6: bool,
    pub src6: u128,
    pub dst6: u128,
    pub proto: u8,
    pub ttl: u8,
    /// More-fragments set or offset non-zero.
    pub fragment: bool,
    /// Offset non-zero: no L4 header in this packet.
    pub nonfirst_fragment: bool,
    /// `sport`/`dport` are valid (TCP or UDP, not a non-first fragment).
    pub has_ports: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// `icmp_type`/`icmp_code` are valid.
    pub has_icmp: bool,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_ident: u16,
    /// Destination is one of the router's addresses.
    pub local_dst: bool,
    /// Connection tracking state.
    pub ct_state: CtState,
}

impl Meta {
    /// The [`crate::rules::Match::families`] bit of this packet's family.
    #[inline(always)]
    pub const fn family_bit(&self) -> u8 {
        if self.v6 {
            crate::rules::FAMILY_V6
        } else {
            crate::rules::FAMILY_V4
        }
    }
}
