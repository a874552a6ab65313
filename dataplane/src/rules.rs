//! The rule model and its matcher: the conditions of raw and filter rules,
//! their actions, the lists they form (raw hooks, filter chains), and
//! whether a packet's [`Meta`] meets a rule's conditions.
//!
//! Built by the control plane, read by the dispatch tables and the raw and
//! filter stages. Knows no stage and no table: what a `source: local`
//! condition needs of the configuration comes through [`LocalAddrs`].

use crate::addr::{Ipv4Prefix, Ipv6Prefix};
use crate::meta::Meta;
use smallvec::SmallVec;

/// Where an address match looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrMatch {
    /// One of the router's own addresses, of either family (iptables
    /// `addrtype LOCAL`).
    Local,
    /// Any of these IPv4 prefixes. The IPv6 prefixes of the same
    /// condition are in [`Match::source6`] / [`Match::destination6`].
    Prefixes(SmallVec<[Ipv4Prefix; 2]>),
}

/// IPv6 prefixes of an address condition.
pub type Prefixes6 = SmallVec<[Ipv6Prefix; 2]>;

/// [`Match::families`] bit: the rule can match IPv4.
pub const FAMILY_V4: u8 = 1;
/// [`Match::families`] bit: the rule can match IPv6.
pub const FAMILY_V6: u8 = 2;

/// The `family:` of a rule, when it must be one family only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

impl Family {
    /// Lower-case name as in config and output.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// A port match: any of these inclusive ranges.
pub type PortRanges = SmallVec<[(u16, u16); 4]>;

/// Conditions of a rule; all present ones must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// Input port mask (bits of [`crate::packet::PortId::bit`]).
    pub in_ports: Option<u64>,
    /// Output port mask; `host` means delivered to the router.
    pub out_ports: Option<u64>,
    /// Source address (`local`, or its IPv4 prefixes).
    pub source: Option<AddrMatch>,
    /// Destination address (`local`, or its IPv4 prefixes).
    pub destination: Option<AddrMatch>,
    /// The IPv6 prefixes of the source condition. One rule list serves
    /// both families (nftables' `inet`): a condition with prefixes of only
    /// one family never matches a packet of the other.
    pub source6: Option<Prefixes6>,
    /// The IPv6 prefixes of the destination condition.
    pub destination6: Option<Prefixes6>,
    /// `family:`, when the rule must be one family only.
    pub family: Option<Family>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// TCP/UDP source port. Never matches a non-first fragment.
    pub source_port: Option<PortRanges>,
    /// TCP/UDP destination port. Never matches a non-first fragment.
    pub destination_port: Option<PortRanges>,
    /// Mask of [`crate::conntrack::CtState::bit`]; not allowed in raw rules.
    pub state: Option<u8>,
    /// ICMP type.
    pub icmp_type: Option<u8>,
    /// ICMP code.
    pub icmp_code: Option<u8>,
    /// Which conditions are present ([`Match::NEED_IN`], ...): computed by
    /// [`crate::tables::Tables::build`] so the matcher skips absent ones with one test.
    pub need: u16,
    /// The families ([`FAMILY_V4`], [`FAMILY_V6`]) the rule can match,
    /// from `family` and the prefixes: computed with `need`.
    pub families: u8,
}

impl Match {
    pub const NEED_IN: u16 = 1 << 0;
    pub const NEED_OUT: u16 = 1 << 1;
    pub const NEED_SRC: u16 = 1 << 2;
    pub const NEED_DST: u16 = 1 << 3;
    pub const NEED_PROTO: u16 = 1 << 4;
    pub const NEED_SPORT: u16 = 1 << 5;
    pub const NEED_DPORT: u16 = 1 << 6;
    pub const NEED_STATE: u16 = 1 << 7;
    pub const NEED_ICMP_TYPE: u16 = 1 << 8;
    pub const NEED_ICMP_CODE: u16 = 1 << 9;
    /// The rule matches one family only ([`Match::families`]).
    pub const NEED_FAMILY: u16 = 1 << 10;

    /// The `need` mask of the conditions present.
    pub fn compute_need(&self) -> u16 {
        let mut n = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                n |= bit;
            }
        };
        set(self.in_ports.is_some(), Self::NEED_IN);
        set(self.out_ports.is_some(), Self::NEED_OUT);
        set(
            self.source.is_some() || self.source6.is_some(),
            Self::NEED_SRC,
        );
        set(
            self.destination.is_some() || self.destination6.is_some(),
            Self::NEED_DST,
        );
        set(self.protocol.is_some(), Self::NEED_PROTO);
        set(self.source_port.is_some(), Self::NEED_SPORT);
        set(self.destination_port.is_some(), Self::NEED_DPORT);
        set(self.state.is_some(), Self::NEED_STATE);
        set(self.icmp_type.is_some(), Self::NEED_ICMP_TYPE);
        set(self.icmp_code.is_some(), Self::NEED_ICMP_CODE);
        set(
            self.compute_families() != FAMILY_V4 | FAMILY_V6,
            Self::NEED_FAMILY,
        );
        n
    }

    /// The families the rule can match: those `family` allows, less a
    /// family for which an address condition has no prefix (a condition
    /// with only IPv4 prefixes never matches IPv6, and the other way).
    pub fn compute_families(&self) -> u8 {
        let mut f = match self.family {
            None => FAMILY_V4 | FAMILY_V6,
            Some(Family::Ipv4) => FAMILY_V4,
            Some(Family::Ipv6) => FAMILY_V6,
        };
        for (v4, v6) in [
            (&self.source, &self.source6),
            (&self.destination, &self.destination6),
        ] {
            match (v4, v6) {
                (None, None) | (Some(AddrMatch::Local), _) => {}
                (Some(AddrMatch::Prefixes(_)), None) => f &= !FAMILY_V6,
                (None, Some(_)) => f &= !FAMILY_V4,
                (Some(AddrMatch::Prefixes(_)), Some(_)) => {}
            }
        }
        f
    }

    /// Fills `need` and `families` from the conditions present.
    pub fn compile(&mut self) {
        self.families = self.compute_families();
        self.need = self.compute_need();
    }
}

/// Raw stage actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawAction {
    /// Skip connection tracking: the packet is UNTRACKED.
    NoTrack,
    /// Stop the raw stage; the packet is tracked.
    Accept,
}

/// A raw rule.
#[derive(Clone, Debug)]
pub struct RawRule {
    /// Conditions.
    pub matches: Match,
    /// Action when all conditions hold.
    pub action: RawAction,
    /// Operator's comment, shown in stats and traces.
    pub comment: Option<String>,
}

/// Filter actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterAction {
    /// Let the packet through.
    Accept,
    /// Drop silently.
    Drop,
    /// Drop and answer: TCP RST for TCP, ICMP port unreachable otherwise.
    Reject,
}

impl FilterAction {
    /// Lower-case name as in config and output.
    pub const fn name(self) -> &'static str {
        match self {
            FilterAction::Accept => "accept",
            FilterAction::Drop => "drop",
            FilterAction::Reject => "reject",
        }
    }
}

/// A filter rule.
#[derive(Clone, Debug)]
pub struct FilterRule {
    /// Conditions.
    pub matches: Match,
    /// Action when all conditions hold.
    pub action: FilterAction,
    /// Operator's comment.
    pub comment: Option<String>,
}

/// Filter chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainId {
    /// Packets to the router.
    Input = 0,
    /// Packets through the router.
    Forward = 1,
    /// Packets from the router.
    Output = 2,
}

impl ChainId {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ChainId::Input => "input",
            ChainId::Forward => "forward",
            ChainId::Output => "output",
        }
    }
}

/// A filter chain: rules in order, then the policy.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Verdict when no rule matches (`Accept` or `Drop`).
    pub policy: FilterAction,
    /// Rules, first match wins.
    pub rules: Vec<FilterRule>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            policy: FilterAction::Accept,
            rules: Vec::new(),
        }
    }
}

/// Raw hooks: which raw rule list a packet meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawHook {
    /// Packets arriving on ports.
    Prerouting = 0,
    /// Packets from the router itself.
    Output = 1,
}

/// A rule list: a raw hook's rules or a filter chain's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleList {
    /// The raw rules of a hook.
    Raw(RawHook),
    /// A filter chain.
    Filter(ChainId),
}

/// What a `source: local` condition asks of the configuration: whether an
/// address is one of the router's own (the compiled tables answer it).
pub trait LocalAddrs {
    /// Whether `addr` is one of the router's addresses.
    fn is_local(&self, addr: u32) -> bool;
    /// Whether `addr` is one of the router's IPv6 addresses.
    fn is_local6(&self, addr: u128) -> bool;
}

/// Whether every condition of `m` holds for the packet. Conditions absent
/// from the rule cost one test of `m.need`; the cheap ones come first.
#[inline(always)]
pub fn matches<L: LocalAddrs + ?Sized>(m: &Match, meta: &Meta, local: &L) -> bool {
    let need = m.need;
    if need == 0 {
        return true;
    }
    if !key_matches(m, meta) {
        return false;
    }
    if need & (Match::NEED_DST | Match::NEED_SRC) != 0 && !addrs_match(m, meta, local) {
        return false;
    }
    // A port match never matches a packet whose ports we cannot see
    // (non-first fragments, protocols without ports).
    if need & Match::NEED_DPORT != 0 {
        let hit = meta.has_ports
            && m.destination_port
                .as_ref()
                .is_some_and(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.dport)));
        if !hit {
            return false;
        }
    }
    if need & Match::NEED_SPORT != 0 {
        let hit = meta.has_ports
            && m.source_port
                .as_ref()
                .is_some_and(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.sport)));
        if !hit {
            return false;
        }
    }
    if need & Match::NEED_ICMP_TYPE != 0 && !(meta.has_icmp && m.icmp_type == Some(meta.icmp_type))
    {
        return false;
    }
    if need & Match::NEED_ICMP_CODE != 0 && !(meta.has_icmp && m.icmp_code == Some(meta.icmp_code))
    {
        return false;
    }
    true
}

/// The address conditions of `m`, for the packet's family. A family
/// whose prefixes are absent was ruled out by [`key_matches`].
#[inline(always)]
fn addrs_match<L: LocalAddrs + ?Sized>(m: &Match, meta: &Meta, local: &L) -> bool {
    if meta.v6 {
        if let Some(ps) = &m.destination6 {
            if !ps.iter().any(|p| p.contains(meta.dst6)) {
                return false;
            }
        }
        return match (&m.source, &m.source6) {
            (Some(AddrMatch::Local), _) => local.is_local6(meta.src6),
            (_, Some(ps)) => ps.iter().any(|p| p.contains(meta.src6)),
            _ => true,
        };
    }
    if let Some(AddrMatch::Prefixes(ps)) = &m.destination {
        if !ps.iter().any(|p| p.contains(meta.dst)) {
            return false;
        }
    }
    match &m.source {
        Some(AddrMatch::Local) => local.is_local(meta.src),
        Some(AddrMatch::Prefixes(ps)) => ps.iter().any(|p| p.contains(meta.src)),
        None => true,
    }
}

/// Whether the conditions of `m` on the fields every packet has hold: input
/// port, protocol, output port, conntrack state, family and `destination:
/// local` (the key of [`crate::dispatch`]'s tables, which build on this
/// test).
#[inline(always)]
pub fn key_matches(m: &Match, meta: &Meta) -> bool {
    let need = m.need;
    if need & Match::NEED_FAMILY != 0 && m.families & meta.family_bit() == 0 {
        return false;
    }
    if need & Match::NEED_IN != 0 && m.in_ports.unwrap_or(0) & meta.in_port.bit() == 0 {
        return false;
    }
    if need & Match::NEED_PROTO != 0 && m.protocol != Some(meta.proto) {
        return false;
    }
    if need & Match::NEED_OUT != 0 {
        match meta.out_port {
            Some(p) if m.out_ports.unwrap_or(0) & p.bit() != 0 => {}
            _ => return false,
        }
    }
    if need & Match::NEED_STATE != 0 && m.state.unwrap_or(0) & meta.ct_state.bit() == 0 {
        return false;
    }
    if need & Match::NEED_DST != 0 && matches!(m.destination, Some(AddrMatch::Local)) {
        return meta.local_dst;
    }
    true
}
