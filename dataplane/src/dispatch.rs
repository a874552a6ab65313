//! Rule dispatch: where a rule list's first match can be, looked up by the
//! fields every packet has, instead of trying the rules in turn.
//!
//! The conditions on the input port, output port, protocol, conntrack state
//! and `destination: local` ("key" conditions) depend on a handful of small
//! values. [`Dispatch::build`] sorts each value into classes that no rule
//! tells apart, and for every combination of classes stores the index of the
//! first rule whose key conditions hold there. When that rule has no other
//! condition (addresses, ports, ICMP type), the entry is *decided*: it is
//! the first match, with no rule tried at all. Otherwise evaluation starts
//! at that rule, since every rule before it fails on the key fields.
//!
//! Like nftables' verdict maps or a VPP classifier, and bounded: a rule set
//! whose classes would need more than [`MAX_ENTRIES`] entries gets a single
//! undecided entry, which is the plain first-match loop.

use crate::conntrack::CtState;
use crate::meta::Meta;
use crate::packet::PortId;
use crate::rules::{
    key_matches, matches, AddrMatch, Chain, FilterAction, LocalAddrs, Match, RawAction, RawRule,
};

/// Most entries a dispatch table may hold.
pub const MAX_ENTRIES: usize = 1 << 14;
/// Entry flag: the entry's rule (or the policy) is the first match.
const DECIDED: u16 = 0x8000;
/// Entry bits holding the first candidate rule (the rule count: none).
const START: u16 = 0x7fff;
/// The conditions a dispatch key decides.
/// The family is in it too: a table is built for one family's packets
/// ([`Dispatch::build_for`]), where a rule for the other family only never
/// matches.
const KEY: u16 =
    Match::NEED_IN | Match::NEED_OUT | Match::NEED_PROTO | Match::NEED_STATE | Match::NEED_FAMILY;
/// The states in [`CtState`] order.
const STATES: [CtState; 5] = [
    CtState::New,
    CtState::Established,
    CtState::Related,
    CtState::Invalid,
    CtState::Untracked,
];

/// A rule list's dispatch table. Each key field maps to its class's offset
/// into `entries` (class times stride); output port, state and
/// destination-local share one table, so a lookup is three loads and adds.
#[derive(Clone, Debug)]
pub struct Dispatch {
    in_off: [u16; 64],
    proto_off: [u16; 256],
    /// The output port, state and destination-local offsets summed, at
    /// `(out * 5 + state) * 2 + local` where `out` is 0 for no output
    /// port yet and `1 + p` for port `p`: one load for the three.
    rest_off: [u16; 65 * 10],
    entries: Box<[u16]>,
}

/// `destination: local`, a key condition (prefixes are not).
fn is_dst_local(m: &Match) -> bool {
    m.need & Match::NEED_DST != 0 && matches!(m.destination, Some(AddrMatch::Local))
}

/// Whether `m` has conditions beyond the key.
fn has_residual(m: &Match) -> bool {
    m.need & !KEY & !Match::NEED_DST != 0 || (m.need & Match::NEED_DST != 0 && !is_dst_local(m))
}

/// Sort `values` into classes by what each rule's condition says of them:
/// returns each value's class and one representative per class.
fn classes<V: Copy>(values: &[V], sig: impl Fn(V) -> Vec<bool>) -> (Vec<usize>, Vec<V>) {
    let mut seen: Vec<Vec<bool>> = Vec::new();
    let mut reps = Vec::new();
    let class = values
        .iter()
        .map(|&v| {
            let s = sig(v);
            match seen.iter().position(|x| *x == s) {
                Some(c) => c,
                None => {
                    seen.push(s);
                    reps.push(v);
                    seen.len() - 1
                }
            }
        })
        .collect();
    (class, reps)
}

impl Dispatch {
    /// A table for IPv4 packets and `rules` (their `need` masks computed).
    pub fn build(rules: &[&Match]) -> Dispatch {
        Dispatch::build_for(rules, false)
    }

    /// A table for `rules` and the packets of one family (`v6`): a rule for
    /// the other family only never matches them.
    pub fn build_for(rules: &[&Match], v6: bool) -> Dispatch {
        let ports: Vec<u8> = (0..64).collect();
        let outs: Vec<Option<u8>> = std::iter::once(None).chain((0..64).map(Some)).collect();
        let protos: Vec<u8> = (0..=255).collect();
        let locals = [false, true];
        let (in_c, in_r) = classes(&ports, |p| {
            rules
                .iter()
                .filter(|m| m.need & Match::NEED_IN != 0)
                .map(|m| m.in_ports.unwrap_or(0) & (1u64 << p) != 0)
                .collect()
        });
        let (out_c, out_r) = classes(&outs, |o| {
            rules
                .iter()
                .filter(|m| m.need & Match::NEED_OUT != 0)
                .map(|m| o.is_some_and(|p| m.out_ports.unwrap_or(0) & (1u64 << p) != 0))
                .collect()
        });
        let (proto_c, proto_r) = classes(&protos, |pr| {
            rules
                .iter()
                .filter(|m| m.need & Match::NEED_PROTO != 0)
                .map(|m| m.protocol == Some(pr))
                .collect()
        });
        let (state_c, state_r) = classes(&STATES, |s| {
            rules
                .iter()
                .filter(|m| m.need & Match::NEED_STATE != 0)
                .map(|m| m.state.unwrap_or(0) & s.bit() != 0)
                .collect()
        });
        let (local_c, local_r) = classes(&locals, |l| {
            rules
                .iter()
                .filter(|m| is_dst_local(m))
                .map(|_| l)
                .collect()
        });
        let dims = [
            in_r.len(),
            out_r.len(),
            proto_r.len(),
            state_r.len(),
            local_r.len(),
        ];
        let total: usize = dims.iter().product();
        if total > MAX_ENTRIES || rules.len() >= START as usize {
            return Dispatch::linear();
        }
        // Row-major strides: local varies fastest.
        let s_local = 1;
        let s_state = s_local * dims[4];
        let s_proto = s_state * dims[3];
        let s_out = s_proto * dims[2];
        let s_in = s_out * dims[1];
        let off = |c: usize, s: usize| (c * s) as u16;
        let mut d = Dispatch {
            in_off: std::array::from_fn(|i| off(in_c[i], s_in)),
            proto_off: std::array::from_fn(|i| off(proto_c[i], s_proto)),
            rest_off: std::array::from_fn(|i| {
                let (out, state, local) = (i / 10, (i / 2) % 5, i % 2);
                off(out_c[out], s_out) + off(state_c[state], s_state) + off(local_c[local], s_local)
            }),
            entries: vec![0; total].into_boxed_slice(),
        };
        for (ci, &in_port) in in_r.iter().enumerate() {
            for (co, &out_port) in out_r.iter().enumerate() {
                for (cp, &proto) in proto_r.iter().enumerate() {
                    for (cs, &state) in state_r.iter().enumerate() {
                        for (cl, &local) in local_r.iter().enumerate() {
                            let k = Meta {
                                in_port: PortId(in_port),
                                out_port: out_port.map(PortId),
                                proto,
                                ct_state: state,
                                local_dst: local,
                                v6,
                                ..Meta::default()
                            };
                            let e = match rules.iter().position(|m| key_matches(m, &k)) {
                                Some(i) if has_residual(rules[i]) => i as u16,
                                Some(i) => i as u16 | DECIDED,
                                None => rules.len() as u16 | DECIDED,
                            };
                            let at = ci * s_in + co * s_out + cp * s_proto + cs * s_state + cl;
                            d.entries[at] = e;
                        }
                    }
                }
            }
        }
        d
    }

    /// The table of the plain first-match loop: one entry, start at rule 0.
    pub fn linear() -> Dispatch {
        Dispatch {
            in_off: [0; 64],
            proto_off: [0; 256],
            rest_off: [0; 65 * 10],
            entries: vec![0].into_boxed_slice(),
        }
    }

    /// Entries in the table (1 for the plain loop).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never empty: present for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for a packet's key fields.
    #[inline(always)]
    pub fn entry(
        &self,
        in_port: PortId,
        out_port: Option<PortId>,
        proto: u8,
        state: CtState,
        local_dst: bool,
    ) -> Entry {
        let out = match out_port {
            Some(p) => 1 + (p.0 as usize & 63),
            None => 0,
        };
        let rest = (out * 5 + state as usize) * 2 + local_dst as usize;
        // Always in range; were it not, `usize::MAX` reads no entry below.
        let at = self.rest_off.get(rest).map_or(usize::MAX, |&r| {
            self.in_off[in_port.0 as usize & 63] as usize
                + self.proto_off[proto as usize] as usize
                + r as usize
        });
        // Out of range cannot happen; rule 0, undecided, is right anyway.
        Entry(self.entries.get(at).copied().unwrap_or(0))
    }

    /// The index of the first rule of `rules` (the list this table was built
    /// for) that matches, or None for no match.
    #[inline(always)]
    pub fn first_match<R, L: LocalAddrs + ?Sized>(
        &self,
        rules: &[R],
        cond: impl Fn(&R) -> &Match,
        meta: &Meta,
        local: &L,
    ) -> Option<usize> {
        let e = self.entry(
            meta.in_port,
            meta.out_port,
            meta.proto,
            meta.ct_state,
            meta.local_dst,
        );
        match e.decided(rules.len()) {
            Some(first) => first,
            None => e.search(rules, cond, meta, local),
        }
    }
}

/// A dispatch entry: a decided first match, or the rule to start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry(u16);

impl Entry {
    /// The first match (None: no rule matches) if the key decides it, for
    /// a list of `len` rules.
    #[inline(always)]
    pub fn decided(self, len: usize) -> Option<Option<usize>> {
        let start = (self.0 & START) as usize;
        (self.0 & DECIDED != 0).then_some((start < len).then_some(start))
    }

    /// The first match, trying the rules from the entry's start.
    #[inline]
    pub fn search<R, L: LocalAddrs + ?Sized>(
        self,
        rules: &[R],
        cond: impl Fn(&R) -> &Match,
        meta: &Meta,
        local: &L,
    ) -> Option<usize> {
        let start = (self.0 & START) as usize;
        rules
            .get(start..)?
            .iter()
            .position(|r| matches(cond(r), meta, local))
            .map(|i| start + i)
    }
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch::linear()
    }
}

/// Protocol classes for a table combining raw prerouting with `chain`: each
/// protocol's class and one representative per class.
fn proto_classes(raw: &[RawRule], chain: &Chain) -> (Vec<usize>, Vec<u8>) {
    let protos: Vec<u8> = (0..=255).collect();
    let conds: Vec<&Match> = raw
        .iter()
        .map(|r| &r.matches)
        .chain(chain.rules.iter().map(|r| &r.matches))
        .filter(|m| m.need & Match::NEED_PROTO != 0)
        .collect();
    classes(&protos, |pr| {
        conds.iter().map(|m| m.protocol == Some(pr)).collect()
    })
}

/// Each of `ports` ports at `stride` times its number; other ports at 0.
fn port_offsets(ports: usize, stride: usize) -> [u32; 64] {
    std::array::from_fn(|i| if i < ports { (i * stride) as u32 } else { 0 })
}

/// [`LocalRules`] code flag: address or port conditions decide; search.
const LOCAL_SEARCH: u32 = 1 << 31;
/// [`LocalRules`] raw code flag: the rule marks the packet NOTRACK.
const LOCAL_NOTRACK: u32 = 1 << 16;
/// No rule decided, in a [`LocalRules`] code's rule field.
const LOCAL_NONE: u32 = 0xffff;

/// The decisions of the path for packets to the router, raw prerouting (no
/// output port, before conntrack) by input port and protocol, and the input
/// chain by input port, protocol and conntrack state: a lookup each, with
/// the action in the entry.
#[derive(Clone, Debug)]
pub struct LocalRules {
    in_off: [u32; 64],
    proto_off: [u32; 256],
    /// By `in_off + proto_off`: rule (or [`LOCAL_NONE`]), NOTRACK flag.
    raw: Box<[u32]>,
    /// By `(in_off + proto_off) * 5 + state`: rule (or [`LOCAL_NONE`] for
    /// the policy), action in bits 16-17.
    input: Box<[u32]>,
}

impl LocalRules {
    /// The table for `ports` ports, from the raw prerouting rules and the
    /// input chain with their dispatch tables.
    pub fn build(
        ports: usize,
        raw: &[RawRule],
        raw_d: &Dispatch,
        input: &Chain,
        input_d: &Dispatch,
    ) -> LocalRules {
        let ports = ports.min(PortId::MAX_PORTS);
        let (proto_c, proto_r) = proto_classes(raw, input);
        let total = ports * proto_r.len();
        if total == 0
            || total * STATES.len() > MAX_ENTRIES
            || raw.len() >= LOCAL_NONE as usize
            || input.rules.len() >= LOCAL_NONE as usize
        {
            return LocalRules::search_all();
        }
        let mut l = LocalRules {
            in_off: port_offsets(ports, proto_r.len()),
            proto_off: std::array::from_fn(|i| proto_c[i] as u32),
            raw: vec![LOCAL_SEARCH; total].into_boxed_slice(),
            input: vec![LOCAL_SEARCH; total * STATES.len()].into_boxed_slice(),
        };
        for pin in 0..ports {
            for (cp, &proto) in proto_r.iter().enumerate() {
                let at = pin * proto_r.len() + cp;
                let i = PortId(pin as u8);
                let e = raw_d.entry(i, None, proto, CtState::Untracked, true);
                if let Some(d) = e.decided(raw.len()) {
                    l.raw[at] = match d {
                        Some(r) if raw[r].action == RawAction::NoTrack => r as u32 | LOCAL_NOTRACK,
                        Some(r) => r as u32,
                        None => LOCAL_NONE,
                    };
                }
                for (k, &state) in STATES.iter().enumerate() {
                    let e = input_d.entry(i, Some(PortId::HOST), proto, state, true);
                    if let Some(d) = e.decided(input.rules.len()) {
                        let action = d.map_or(input.policy, |r| input.rules[r].action);
                        let rule = d.map_or(LOCAL_NONE, |r| r as u32);
                        l.input[at * STATES.len() + k] = rule | action_bits(action) << 16;
                    }
                }
            }
        }
        l
    }

    /// A table that always says search.
    pub fn search_all() -> LocalRules {
        LocalRules {
            in_off: [0; 64],
            proto_off: [0; 256],
            raw: vec![LOCAL_SEARCH].into_boxed_slice(),
            input: vec![LOCAL_SEARCH; STATES.len()].into_boxed_slice(),
        }
    }

    /// Where a packet's entries are, from its input port and protocol.
    #[inline(always)]
    pub fn at(&self, in_port: PortId, proto: u8) -> usize {
        self.in_off[in_port.0 as usize & 63] as usize + self.proto_off[proto as usize] as usize
    }

    /// Raw prerouting's deciding rule as a code ([`LocalRules::NONE`]: no
    /// rule) and whether it marks the packet NOTRACK; None when rules must
    /// be tried.
    #[inline(always)]
    pub fn raw(&self, at: usize) -> Option<(u16, bool)> {
        let c = self.raw.get(at).copied().unwrap_or(LOCAL_SEARCH);
        (c & LOCAL_SEARCH == 0).then_some((c as u16, c & LOCAL_NOTRACK != 0))
    }

    /// The input chain's deciding rule as a code ([`LocalRules::NONE`]: the
    /// policy) and the action; None when rules must be tried.
    #[inline(always)]
    pub fn input(&self, at: usize, state: CtState) -> Option<(u16, FilterAction)> {
        let i = at * STATES.len() + state as usize;
        let c = self.input.get(i).copied().unwrap_or(LOCAL_SEARCH);
        if c & LOCAL_SEARCH != 0 {
            return None;
        }
        let action = match (c >> 16) & 3 {
            0 => FilterAction::Accept,
            1 => FilterAction::Drop,
            _ => FilterAction::Reject,
        };
        Some((c as u16, action))
    }

    /// The rule code of no rule.
    pub const NONE: u16 = LOCAL_NONE as u16;

    /// A rule index as a code, if it fits.
    pub fn code(rule: Option<usize>) -> Option<u16> {
        match rule {
            Some(i) if i < LOCAL_NONE as usize => Some(i as u16),
            Some(_) => None,
            None => Some(Self::NONE),
        }
    }

    /// The rule index of a code.
    pub fn rule(code: u16) -> Option<usize> {
        (code != Self::NONE).then_some(code as usize)
    }
}

impl Default for LocalRules {
    fn default() -> Self {
        LocalRules::search_all()
    }
}

/// An action in two bits, for [`LocalRules`].
const fn action_bits(a: FilterAction) -> u32 {
    match a {
        FilterAction::Accept => 0,
        FilterAction::Drop => 1,
        FilterAction::Reject => 2,
    }
}

/// [`FastRules`] code flag: not for the fast path (raw tracks the packet,
/// or the forward chain does not accept it).
const FAST_SLOW: u32 = 1 << 31;
/// [`FastRules`] code flag: address or port conditions decide; search.
const FAST_SEARCH: u32 = 1 << 30;
/// The forward policy decided, in a fast code's rule field.
const FAST_POLICY: u32 = 0x7fff;

/// The transit fast path's two rule decisions, raw prerouting then the
/// forward chain, for an untracked packet by input port, output port and
/// protocol: one lookup instead of two dispatch lookups.
#[derive(Clone, Debug)]
pub struct FastRules {
    in_off: [u32; 64],
    out_off: [u32; 64],
    proto_off: [u32; 256],
    codes: Box<[u32]>,
}

/// What [`FastRules`] says of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastCode {
    /// A raw rule marks it NOTRACK and a forward rule (or the policy,
    /// [`FAST_POLICY`]) accepts it: `code` packs both, 15 bits each.
    Fast { code: u32 },
    /// The general path decides.
    Slow,
    /// Rules with address or port conditions must be tried.
    Search,
}

impl FastCode {
    /// The fast code of a raw rule and a forward rule (None: the policy),
    /// if their indexes fit.
    pub fn pack(raw: usize, fwd: Option<usize>) -> Option<u32> {
        // A rule index must stay below the policy's mark to read back as a rule.
        let fits = fwd.is_none_or(|f| f < FAST_POLICY as usize);
        let fwd = fwd.unwrap_or(FAST_POLICY as usize);
        (raw < FAST_POLICY as usize && fits).then_some(raw as u32 | (fwd as u32) << 15)
    }

    /// The raw rule and the forward rule (None: the policy) of a fast code.
    pub fn rules(code: u32) -> (usize, Option<usize>) {
        let fwd = (code >> 15) & FAST_POLICY;
        (
            (code & 0x7fff) as usize,
            (fwd != FAST_POLICY).then_some(fwd as usize),
        )
    }
}

impl FastRules {
    /// The table for `ports` ports, from the raw prerouting rules and the
    /// forward chain with their dispatch tables.
    pub fn build(
        ports: usize,
        raw: &[RawRule],
        raw_d: &Dispatch,
        fwd: &Chain,
        fwd_d: &Dispatch,
    ) -> FastRules {
        let ports = ports.min(PortId::MAX_PORTS);
        let (proto_c, proto_r) = proto_classes(raw, fwd);
        let total = ports * ports * proto_r.len();
        // Rule indexes fit 15 bits each (dispatch tables hold fewer rules).
        if total == 0
            || total > MAX_ENTRIES
            || raw.len() >= FAST_POLICY as usize
            || fwd.rules.len() >= FAST_POLICY as usize
        {
            return FastRules::search_all();
        }
        let s_out = proto_r.len();
        let s_in = ports * s_out;
        let mut f = FastRules {
            in_off: port_offsets(ports, s_in),
            out_off: port_offsets(ports, s_out),
            proto_off: std::array::from_fn(|i| proto_c[i] as u32),
            codes: vec![0; total].into_boxed_slice(),
        };
        for pin in 0..ports {
            for pout in 0..ports {
                for (cp, &proto) in proto_r.iter().enumerate() {
                    let (i, o) = (PortId(pin as u8), PortId(pout as u8));
                    let re = raw_d.entry(i, None, proto, CtState::Untracked, false);
                    let fe = fwd_d.entry(i, Some(o), proto, CtState::Untracked, false);
                    let code = match (re.decided(raw.len()), fe.decided(fwd.rules.len())) {
                        (Some(None), _) => FAST_SLOW,
                        (Some(Some(r)), _) if raw[r].action != RawAction::NoTrack => FAST_SLOW,
                        (Some(Some(r)), Some(d)) => {
                            let action = d.map_or(fwd.policy, |k| fwd.rules[k].action);
                            match FastCode::pack(r, d) {
                                Some(code) if action == FilterAction::Accept => code,
                                _ => FAST_SLOW,
                            }
                        }
                        _ => FAST_SEARCH,
                    };
                    f.codes[pin * s_in + pout * s_out + cp] = code;
                }
            }
        }
        f
    }

    /// A table that always says [`FastCode::Search`].
    pub fn search_all() -> FastRules {
        FastRules {
            in_off: [0; 64],
            out_off: [0; 64],
            proto_off: [0; 256],
            codes: vec![FAST_SEARCH].into_boxed_slice(),
        }
    }

    /// The decision for an untracked transit packet.
    #[inline(always)]
    pub fn get(&self, in_port: PortId, out_port: PortId, proto: u8) -> FastCode {
        self.get_at(in_port, self.out_offset(out_port), proto)
    }

    /// The part of a lookup that depends on the output port, to keep with
    /// a next hop.
    pub fn out_offset(&self, out_port: PortId) -> u32 {
        self.out_off[out_port.0 as usize & 63]
    }

    /// [`FastRules::get`] with the output port's [`FastRules::out_offset`].
    #[inline(always)]
    pub fn get_at(&self, in_port: PortId, out_offset: u32, proto: u8) -> FastCode {
        let at = self.in_off[in_port.0 as usize & 63] as usize
            + out_offset as usize
            + self.proto_off[proto as usize] as usize;
        match self.codes.get(at).copied().unwrap_or(FAST_SEARCH) {
            c if c & FAST_SLOW != 0 => FastCode::Slow,
            c if c & FAST_SEARCH != 0 => FastCode::Search,
            code => FastCode::Fast { code },
        }
    }
}

impl Default for FastRules {
    fn default() -> Self {
        FastRules::search_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{IfAddr, Ipv4Prefix, Ipv6Prefix, Mac};
    use crate::rules::{ChainId, Family, FilterRule, PortRanges};
    use crate::tables::{Interface, Tables, TablesSpec};
    use proptest::prelude::*;

    const ICMP: u8 = 1;
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const GRE: u8 = 47;
    /// Ports rules name: four interfaces and the host path.
    const RULE_PORTS: [u8; 6] = [0, 1, 2, 3, 4, 63];
    /// Input ports to try: those, and one no rule names.
    const IN_PORTS: [u8; 7] = [0, 1, 2, 3, 4, 5, 63];
    /// Output ports to try: none yet, the rule ports, one no rule names.
    const OUT_PORTS: [Option<u8>; 8] = [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(3),
        Some(4),
        Some(5),
        Some(63),
    ];
    /// Protocols to try: the rule protocols and two no rule names.
    const PROTOS: [u8; 6] = [ICMP, TCP, UDP, GRE, 0, 255];
    const RANGES: [(u16, u16); 7] = [
        (22, 22),
        (23, 23),
        (2323, 2323),
        (53, 53),
        (80, 443),
        (0, 1023),
        (1024, 65535),
    ];
    const PORT_VALUES: [u16; 11] = [0, 22, 23, 53, 80, 443, 1023, 1024, 2323, 8080, 65535];
    const ICMP_TYPES: [u8; 4] = [0, 3, 8, 11];

    const fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_be_bytes([a, b, c, d])
    }

    fn prefix(a: u32, len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(a, len).expect("prefix length")
    }

    /// Prefixes rules use: nested, disjoint, a host, the default.
    fn prefixes() -> Vec<Ipv4Prefix> {
        vec![
            prefix(ip(198, 18, 0, 0), 16),
            prefix(ip(198, 18, 1, 0), 24),
            prefix(ip(198, 18, 1, 1), 32),
            prefix(ip(198, 51, 100, 0), 24),
            prefix(ip(198, 51, 100, 128), 25),
            prefix(ip(203, 0, 113, 0), 24),
            Ipv4Prefix::DEFAULT,
        ]
    }

    /// The router's address on port `i` of the test tables.
    const fn router_addr(i: u8) -> u32 {
        ip(198, 18, i, 1)
    }

    /// Tables with four ports (198.18.N.1/24 on port N) and these raw
    /// prerouting rules and forward chain; the rest empty.
    fn tables_with(raw: Vec<RawRule>, forward: Chain) -> Tables {
        Tables::build(TablesSpec {
            interfaces: interfaces(),
            raw_prerouting: raw,
            filter_forward: forward,
            ..TablesSpec::default()
        })
    }

    /// Four ports, 198.18.N.1/24 on port N.
    fn interfaces() -> Vec<Interface> {
        (0..4u8)
            .map(|i| Interface {
                name: format!("p{i}"),
                device: format!("r{i}"),
                mac: Mac([2, 0, 0x5e, 0, 0, i + 1]),
                addresses: vec![IfAddr {
                    addr: router_addr(i),
                    net: prefix(router_addr(i), 24),
                }],
                addresses6: Vec::new(),
                mtu: 1500,
                ra: None,
            })
            .collect()
    }

    fn mask() -> impl Strategy<Value = u64> {
        prop::sample::subsequence(RULE_PORTS.to_vec(), 0..=RULE_PORTS.len())
            .prop_map(|ps| ps.iter().fold(0u64, |m, p| m | 1u64 << p))
    }

    fn addr_match() -> impl Strategy<Value = AddrMatch> {
        prop_oneof![
            1 => Just(AddrMatch::Local),
            3 => prop::sample::subsequence(prefixes(), 1..=2)
                .prop_map(|ps| AddrMatch::Prefixes(ps.into_iter().collect())),
        ]
    }

    fn ranges() -> impl Strategy<Value = PortRanges> {
        prop::sample::subsequence(RANGES.to_vec(), 1..=2).prop_map(|r| r.into_iter().collect())
    }

    fn proto() -> impl Strategy<Value = u8> {
        prop::sample::select(vec![ICMP, TCP, UDP, GRE])
    }

    /// A condition present about one time in three.
    fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
        prop::option::weighted(0.35, s)
    }

    /// A rule's conditions, with `need` computed.
    fn a_match() -> impl Strategy<Value = Match> {
        (
            opt(mask()),
            opt(mask()),
            opt(addr_match()),
            opt(addr_match()),
            opt(proto()),
            opt(ranges()),
            opt(ranges()),
            opt(0u8..32),
            opt(prop::sample::select(ICMP_TYPES.to_vec())),
            opt(0u8..2),
        )
            .prop_map(
                |(
                    in_ports,
                    out_ports,
                    source,
                    destination,
                    protocol,
                    sp,
                    dp,
                    state,
                    ity,
                    icode,
                )| {
                    let mut m = Match {
                        in_ports,
                        out_ports,
                        source,
                        destination,
                        protocol,
                        source_port: sp,
                        destination_port: dp,
                        state,
                        icmp_type: ity,
                        icmp_code: icode,
                        ..Match::default()
                    };
                    m.compile();
                    m
                },
            )
    }

    fn address() -> impl Strategy<Value = u32> {
        prop_oneof![
            prop::sample::select(vec![
                router_addr(0),
                router_addr(1),
                router_addr(3),
                ip(198, 18, 1, 77),
                ip(198, 18, 2, 5),
                ip(198, 51, 100, 7),
                ip(198, 51, 100, 200),
                ip(203, 0, 113, 9),
                ip(192, 0, 2, 1),
            ]),
            any::<u32>(),
        ]
    }

    fn port_value() -> impl Strategy<Value = u16> {
        prop_oneof![
            3 => prop::sample::select(PORT_VALUES.to_vec()),
            1 => any::<u16>(),
        ]
    }

    /// A packet's fields other than the key ones (those are swept).
    fn probe() -> impl Strategy<Value = Meta> {
        (
            address(),
            address(),
            port_value(),
            port_value(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![prop::sample::select(ICMP_TYPES.to_vec()), any::<u8>()],
            0u8..3,
        )
            .prop_map(
                |(src, dst, sport, dport, has_ports, has_icmp, icmp_type, icmp_code)| Meta {
                    src,
                    dst,
                    sport,
                    dport,
                    has_ports,
                    has_icmp,
                    icmp_type,
                    icmp_code,
                    ..Meta::default()
                },
            )
    }

    /// Every combination of the key fields, over `probe`'s other fields.
    fn keyed(probe: &Meta) -> impl Iterator<Item = Meta> + '_ {
        IN_PORTS.into_iter().flat_map(move |i| {
            OUT_PORTS.into_iter().flat_map(move |o| {
                PROTOS.into_iter().flat_map(move |proto| {
                    STATES.into_iter().flat_map(move |ct_state| {
                        [false, true].into_iter().map(move |local_dst| Meta {
                            in_port: PortId(i),
                            out_port: o.map(PortId),
                            proto,
                            ct_state,
                            local_dst,
                            ..*probe
                        })
                    })
                })
            })
        })
    }

    /// The plain first-match loop dispatch must agree with.
    fn linear(rules: &[Match], meta: &Meta, tables: &Tables) -> Option<usize> {
        rules.iter().position(|r| matches(r, meta, tables))
    }

    fn check_first_match(
        rules: &[Match],
        probes: &[Meta],
        tables: &Tables,
    ) -> Result<Dispatch, TestCaseError> {
        let d = Dispatch::build(&rules.iter().collect::<Vec<_>>());
        for p in probes {
            for m in keyed(p) {
                prop_assert_eq!(
                    d.first_match(rules, |r| r, &m, tables),
                    linear(rules, &m, tables),
                    "meta {:?}",
                    m
                );
            }
        }
        Ok(d)
    }

    proptest! {
        #[test]
        fn first_match_is_the_linear_first_match(
            rules in prop::collection::vec(a_match(), 0..12),
            probes in prop::collection::vec(probe(), 1..4),
        ) {
            let t = tables_with(Vec::new(), Chain::default());
            let d = check_first_match(&rules, &probes, &t)?;
            // Without address, port or ICMP conditions the key decides
            // every packet: no rule is tried at all.
            if d.len() > 1 && rules.iter().all(|r| !has_residual(r)) {
                for p in &probes {
                    for m in keyed(p) {
                        let e = d.entry(m.in_port, m.out_port, m.proto, m.ct_state, m.local_dst);
                        prop_assert_eq!(e.decided(rules.len()), Some(linear(&rules, &m, &t)));
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_list_never_matches() {
        let t = tables_with(Vec::new(), Chain::default());
        let d = Dispatch::build(&[]);
        let m = Meta::default();
        assert_eq!(d.first_match(&[] as &[Match], |r| r, &m, &t), None);
        assert_eq!(
            d.entry(PortId(0), None, TCP, CtState::New, false)
                .decided(0),
            Some(None)
        );
    }

    /// Twelve rules on different ports, protocols and states, and one on
    /// `destination: local`, have 13 * 13 * 13 * 5 * 2 = 21,970 class
    /// combinations: more than a table may hold.
    fn too_many_classes() -> Vec<Match> {
        let mut rules: Vec<Match> = (0..12u8)
            .map(|i| Match {
                in_ports: Some(1u64 << i),
                out_ports: Some(1u64 << (11 - i)),
                protocol: Some(i * 3),
                state: Some(1 << (i % 5)),
                destination_port: (i % 4 == 0).then(|| [(20, 30)].into_iter().collect()),
                ..Match::default()
            })
            .collect();
        rules.push(Match {
            destination: Some(AddrMatch::Local),
            ..Match::default()
        });
        for r in &mut rules {
            r.compile();
        }
        rules
    }

    #[test]
    fn a_rule_set_beyond_max_entries_is_searched_in_turn() {
        let rules = too_many_classes();
        let t = tables_with(Vec::new(), Chain::default());
        let d = Dispatch::build(&rules.iter().collect::<Vec<_>>());
        assert_eq!(d.len(), 1, "falls back to the plain loop");
        let mut hits = vec![0usize; rules.len() + 1];
        for i in 0..14u8 {
            for o in std::iter::once(None).chain((0..14).chain([63]).map(Some)) {
                for proto in (0..40).step_by(3) {
                    for ct_state in STATES {
                        for local_dst in [false, true] {
                            for dport in [0, 20, 25, 31] {
                                let m = Meta {
                                    in_port: PortId(i),
                                    out_port: o.map(PortId),
                                    proto,
                                    ct_state,
                                    local_dst,
                                    has_ports: true,
                                    dport,
                                    ..Meta::default()
                                };
                                let want = linear(&rules, &m, &t);
                                assert_eq!(d.first_match(&rules, |r| r, &m, &t), want, "{m:?}");
                                hits[want.unwrap_or(rules.len())] += 1;
                            }
                        }
                    }
                }
            }
        }
        // The sweep reached every rule and the no-match case.
        assert!(hits.iter().all(|&n| n > 0), "{hits:?}");
        // Two rules fewer fit (11 * 11 * 11 * 5 * 2 = 13,310), and still
        // answer right.
        let fewer = &rules[2..];
        let d = Dispatch::build(&fewer.iter().collect::<Vec<_>>());
        assert!(d.len() > 1 && d.len() <= MAX_ENTRIES, "{}", d.len());
        let probes: Vec<Meta> = [0u16, 25]
            .map(|dport| Meta {
                has_ports: true,
                dport,
                ..Meta::default()
            })
            .to_vec();
        for p in &probes {
            for m in keyed(p) {
                assert_eq!(d.first_match(fewer, |r| r, &m, &t), linear(fewer, &m, &t));
            }
        }
    }

    #[test]
    fn fast_codes_give_back_the_rules_they_pack() {
        let last = FAST_POLICY as usize - 1;
        for raw in [0, 1, last, last + 1] {
            for fwd in [None, Some(0), Some(1), Some(last), Some(last + 1)] {
                if let Some(code) = FastCode::pack(raw, fwd) {
                    assert_eq!(code & (FAST_SLOW | FAST_SEARCH), 0);
                    assert_eq!(
                        FastCode::rules(code),
                        (raw, fwd),
                        "pack({raw}, {fwd:?}) = {code:#x}"
                    );
                }
            }
        }
        assert_eq!(
            FastCode::pack(last, None).map(FastCode::rules),
            Some((last, None))
        );
    }

    fn raw_rule(matches: Match, action: RawAction) -> RawRule {
        RawRule {
            matches,
            action,
            comment: None,
        }
    }

    fn filter_rule(matches: Match, action: FilterAction) -> FilterRule {
        FilterRule {
            matches,
            action,
            comment: None,
        }
    }

    /// The transit router's rules: raw `destination: local -> accept`, then
    /// `notrack`; forward drops telnet from wan, policy `policy`.
    fn transit_router(policy: FilterAction) -> Tables {
        let raw = vec![
            raw_rule(
                Match {
                    destination: Some(AddrMatch::Local),
                    ..Match::default()
                },
                RawAction::Accept,
            ),
            raw_rule(Match::default(), RawAction::NoTrack),
        ];
        let forward = Chain {
            policy,
            rules: vec![filter_rule(
                Match {
                    in_ports: Some(PortId(0).bit()),
                    protocol: Some(TCP),
                    destination_port: Some([(23, 23), (2323, 2323)].into_iter().collect()),
                    ..Match::default()
                },
                FilterAction::Drop,
            )],
        };
        tables_with(raw, forward)
    }

    #[test]
    fn the_transit_router_takes_the_fast_path_where_rules_allow() {
        let (wan, lan) = (PortId(0), PortId(1));
        let t = transit_router(FilterAction::Accept);
        let policy_code = FastCode::pack(1, None).expect("fits");
        let f = &t.fast_rules;
        assert_eq!(f.get(wan, lan, UDP), FastCode::Fast { code: policy_code });
        assert_eq!(f.get(wan, lan, ICMP), FastCode::Fast { code: policy_code });
        assert_eq!(f.get(lan, wan, TCP), FastCode::Fast { code: policy_code });
        assert_eq!(f.get(lan, wan, UDP), FastCode::Fast { code: policy_code });
        // The telnet rule needs the destination port.
        assert_eq!(f.get(wan, lan, TCP), FastCode::Search);
        assert_eq!(f.get(wan, PortId(2), TCP), FastCode::Search);
        assert_eq!(
            FastCode::rules(policy_code),
            (1, None),
            "the notrack rule, then the policy"
        );

        let t = transit_router(FilterAction::Drop);
        let f = &t.fast_rules;
        assert_eq!(f.get(wan, lan, UDP), FastCode::Slow);
        assert_eq!(f.get(lan, wan, TCP), FastCode::Slow);
        // The telnet rule drops too, but only some packets reach it.
        assert_eq!(f.get(wan, lan, TCP), FastCode::Search);
    }

    #[test]
    fn a_tracked_transit_packet_is_slow() {
        // raw: tcp is tracked, the rest notrack.
        let raw = vec![
            raw_rule(
                Match {
                    protocol: Some(TCP),
                    ..Match::default()
                },
                RawAction::Accept,
            ),
            raw_rule(Match::default(), RawAction::NoTrack),
        ];
        let t = tables_with(raw, Chain::default());
        let f = &t.fast_rules;
        assert_eq!(f.get(PortId(0), PortId(1), TCP), FastCode::Slow);
        let code = FastCode::pack(1, None).expect("fits");
        assert_eq!(f.get(PortId(0), PortId(1), UDP), FastCode::Fast { code });
        // No raw rule at all: everything is tracked.
        let t = tables_with(Vec::new(), Chain::default());
        assert_eq!(t.fast_rules.get(PortId(2), PortId(3), UDP), FastCode::Slow);
    }

    fn raw_action() -> impl Strategy<Value = RawAction> {
        prop_oneof![Just(RawAction::NoTrack), Just(RawAction::Accept)]
    }

    fn filter_action() -> impl Strategy<Value = FilterAction> {
        prop_oneof![
            2 => Just(FilterAction::Accept),
            1 => Just(FilterAction::Drop),
            1 => Just(FilterAction::Reject),
        ]
    }

    proptest! {
        #[test]
        fn fast_rules_agree_with_both_rule_lists(
            raw in prop::collection::vec((a_match(), raw_action()), 0..12),
            fwd in prop::collection::vec((a_match(), filter_action()), 0..12),
            policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
            probes in prop::collection::vec(probe(), 24..48),
        ) {
            let raw: Vec<RawRule> = raw.into_iter().map(|(m, a)| raw_rule(m, a)).collect();
            let rules = fwd.into_iter().map(|(m, a)| filter_rule(m, a)).collect();
            let t = tables_with(raw, Chain { policy, rules });
            let raw_m: Vec<Match> = t.raw_prerouting.iter().map(|r| r.matches.clone()).collect();
            let fwd = &t.filter[ChainId::Forward as usize];
            let fwd_m: Vec<Match> = fwd.rules.iter().map(|r| r.matches.clone()).collect();
            let fwd_d = &t.filter_dispatch[ChainId::Forward as usize];
            // What the general path decides: the raw rule when it is a
            // notrack one, and the forward rule (None: the policy) when
            // it accepts.
            let fast_for = |m: &Meta, out: PortId| {
                let raw_meta = Meta { out_port: None, ct_state: CtState::Untracked, local_dst: false, ..*m };
                let r = linear(&raw_m, &raw_meta, &t)?;
                if t.raw_prerouting[r].action != RawAction::NoTrack {
                    return None;
                }
                let fwd_meta = Meta { out_port: Some(out), ..raw_meta };
                let f = linear(&fwd_m, &fwd_meta, &t);
                let action = f.map_or(fwd.policy, |i| fwd.rules[i].action);
                (action == FilterAction::Accept).then_some((r, f))
            };
            for i in 0..4u8 {
                for o in 0..4u8 {
                    for proto in PROTOS {
                        let (pin, pout) = (PortId(i), PortId(o));
                        let got = t.fast_rules.get(pin, pout, proto);
                        prop_assert_eq!(got, t.fast_rules.get_at(pin, t.fast_rules.out_offset(pout), proto));
                        for p in &probes {
                            let m = Meta { in_port: pin, proto, ..*p };
                            let want = fast_for(&m, pout);
                            match got {
                                FastCode::Fast { code } => prop_assert_eq!(
                                    want, Some(FastCode::rules(code)),
                                    "fast ({}, {}, {}) for {:?}", i, o, proto, m
                                ),
                                FastCode::Slow => prop_assert_eq!(
                                    want, None, "slow ({}, {}, {}) for {:?}", i, o, proto, m
                                ),
                                FastCode::Search => {}
                            }
                        }
                        // Both decided by the key: nothing left to search.
                        let re = t.raw_dispatch[0].entry(pin, None, proto, CtState::Untracked, false);
                        let fe = fwd_d.entry(pin, Some(pout), proto, CtState::Untracked, false);
                        if re.decided(raw_m.len()).is_some() && fe.decided(fwd_m.len()).is_some() {
                            prop_assert_ne!(got, FastCode::Search, "({}, {}, {})", i, o, proto);
                        }
                    }
                }
            }
        }
    }

    /// Tables with four ports, these raw prerouting rules and this input
    /// chain; the rest empty.
    fn tables_with_input(raw: Vec<RawRule>, input: Chain) -> Tables {
        Tables::build(TablesSpec {
            interfaces: interfaces(),
            raw_prerouting: raw,
            filter_input: input,
            ..TablesSpec::default()
        })
    }

    /// A rule's key conditions only (ports, protocol, state, destination
    /// local): `a_match` without its address, port and ICMP conditions.
    fn a_key_match() -> impl Strategy<Value = Match> {
        a_match().prop_map(|mut m| {
            m.source = None;
            if !matches!(m.destination, Some(AddrMatch::Local)) {
                m.destination = None;
            }
            m.source_port = None;
            m.destination_port = None;
            m.icmp_type = None;
            m.icmp_code = None;
            m.compile();
            m
        })
    }

    /// IPv6 prefixes rules use: nested, disjoint, a host, the default.
    fn prefixes6() -> Vec<Ipv6Prefix> {
        let p = |a: u128, len| Ipv6Prefix::new(a, len).expect("prefix length");
        vec![
            p(0x2001_0db8 << 96, 32),
            p(0x2001_0db8_0001 << 80, 48),
            p(0x2001_0db8_0001 << 80 | 1, 128),
            p(0x2001_0db8_ffff << 80, 48),
            p(0, 0),
        ]
    }

    /// `a_match` with IPv6 address conditions and a family, sometimes: a
    /// rule that only IPv4 prefixes or `family: ipv4` keep from IPv6. An
    /// address condition is `local` or prefixes, as in a config.
    fn a_match6() -> impl Strategy<Value = Match> {
        let p6 = || {
            prop::sample::subsequence(prefixes6(), 1..=2).prop_map(|ps| ps.into_iter().collect())
        };
        let family = prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)];
        (a_match(), opt(p6()), opt(p6()), opt(family)).prop_map(|(mut m, s6, d6, family)| {
            let local = |a: &Option<AddrMatch>| matches!(a, Some(AddrMatch::Local));
            m.source6 = s6.filter(|_| !local(&m.source));
            m.destination6 = d6.filter(|_| !local(&m.destination));
            m.family = family;
            m.compile();
            m
        })
    }

    /// `a_key_match` with a family, sometimes (a key condition too).
    fn a_key_match6() -> impl Strategy<Value = Match> {
        let family = prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)];
        (a_key_match(), opt(family)).prop_map(|(mut m, family)| {
            m.family = family;
            m.compile();
            m
        })
    }

    /// `probe` as an IPv6 packet.
    fn probe6() -> impl Strategy<Value = Meta> {
        let addr6 = || {
            prop_oneof![
                prop::sample::select(vec![
                    0x2001_0db8_0001u128 << 80 | 1,
                    0x2001_0db8_0001 << 80 | 5,
                    0x2001_0db8_ffff << 80 | 7,
                    0x2001_0db8_0005 << 80 | 9,
                ]),
                any::<u128>(),
            ]
        };
        (probe(), addr6(), addr6()).prop_map(|(p, src6, dst6)| Meta {
            v6: true,
            src: 0,
            dst: 0,
            src6,
            dst6,
            ..p
        })
    }

    /// Checks every `Some` answer of `t.local_rules` (`t.local_rules6`
    /// for IPv6 probes, `v6`) for input ports 0-3, `PROTOS` and every
    /// state against the first-match loops over `probes`, for packets to
    /// the router. Returns how many answers were None (search).
    fn check_local_rules(t: &Tables, probes: &[Meta], v6: bool) -> Result<usize, TestCaseError> {
        let (lr, raw_d, input_d) = if v6 {
            (
                &t.local_rules6,
                &t.raw_dispatch6[0],
                &t.filter_dispatch6[ChainId::Input as usize],
            )
        } else {
            (
                &t.local_rules,
                &t.raw_dispatch[0],
                &t.filter_dispatch[ChainId::Input as usize],
            )
        };
        let raw = &t.raw_prerouting;
        let raw_m: Vec<Match> = raw.iter().map(|r| r.matches.clone()).collect();
        let input = &t.filter[ChainId::Input as usize];
        let input_m: Vec<Match> = input.rules.iter().map(|r| r.matches.clone()).collect();
        let mut searched = 0;
        for i in 0..4u8 {
            for proto in PROTOS {
                let pin = PortId(i);
                let at = lr.at(pin, proto);
                let got = lr.raw(at);
                for p in probes {
                    prop_assert_eq!(p.v6, v6);
                    let m = Meta {
                        in_port: pin,
                        proto,
                        out_port: None,
                        ct_state: CtState::Untracked,
                        local_dst: true,
                        ..*p
                    };
                    let want = linear(&raw_m, &m, t);
                    if let Some((code, notrack)) = got {
                        let want_notrack =
                            want.is_some_and(|r| raw[r].action == RawAction::NoTrack);
                        prop_assert_eq!(
                            (LocalRules::rule(code), notrack),
                            (want, want_notrack),
                            "raw ({}, {}) for {:?}",
                            i,
                            proto,
                            m
                        );
                    }
                }
                // The raw key decides: the table must not say search.
                let re = raw_d.entry(pin, None, proto, CtState::Untracked, true);
                if re.decided(raw_m.len()).is_some() {
                    prop_assert!(got.is_some(), "raw ({}, {}) searched", i, proto);
                }
                searched += usize::from(got.is_none());
                for state in STATES {
                    let got = lr.input(at, state);
                    for p in probes {
                        let m = Meta {
                            in_port: pin,
                            proto,
                            out_port: Some(PortId::HOST),
                            ct_state: state,
                            local_dst: true,
                            ..*p
                        };
                        let r = linear(&input_m, &m, t);
                        let action = r.map_or(input.policy, |k| input.rules[k].action);
                        if let Some((code, a)) = got {
                            prop_assert_eq!(
                                (LocalRules::rule(code), a),
                                (r, action),
                                "input ({}, {}, {:?}) for {:?}",
                                i,
                                proto,
                                state,
                                m
                            );
                        }
                    }
                    let e = input_d.entry(pin, Some(PortId::HOST), proto, state, true);
                    if e.decided(input_m.len()).is_some() {
                        prop_assert!(
                            got.is_some(),
                            "input ({}, {}, {:?}) searched",
                            i,
                            proto,
                            state
                        );
                    }
                    searched += usize::from(got.is_none());
                }
            }
        }
        Ok(searched)
    }

    proptest! {
        #[test]
        fn local_rules_agree_with_raw_and_input(
            raw in prop::collection::vec((a_match(), raw_action()), 0..12),
            input in prop::collection::vec((a_match(), filter_action()), 0..12),
            policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
            probes in prop::collection::vec(probe(), 24..48),
        ) {
            let raw = raw.into_iter().map(|(m, a)| raw_rule(m, a)).collect();
            let rules = input.into_iter().map(|(m, a)| filter_rule(m, a)).collect();
            let t = tables_with_input(raw, Chain { policy, rules });
            check_local_rules(&t, &probes, false)?;
        }

        #[test]
        fn local_rules6_agree_with_raw_and_input(
            raw in prop::collection::vec((a_match6(), raw_action()), 0..12),
            input in prop::collection::vec((a_match6(), filter_action()), 0..12),
            policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
            probes in prop::collection::vec(probe6(), 24..48),
        ) {
            let raw = raw.into_iter().map(|(m, a)| raw_rule(m, a)).collect();
            let rules = input.into_iter().map(|(m, a)| filter_rule(m, a)).collect();
            let t = tables_with_input(raw, Chain { policy, rules });
            check_local_rules(&t, &probes, true)?;
        }

        #[test]
        fn local_rules6_without_address_or_port_conditions_never_search(
            raw in prop::collection::vec((a_key_match6(), raw_action()), 0..12),
            input in prop::collection::vec((a_key_match6(), filter_action()), 0..12),
            policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
            probes in prop::collection::vec(probe6(), 4..8),
        ) {
            let raw = raw.into_iter().map(|(m, a)| raw_rule(m, a)).collect();
            let rules = input.into_iter().map(|(m, a)| filter_rule(m, a)).collect();
            let t = tables_with_input(raw, Chain { policy, rules });
            prop_assert_eq!(check_local_rules(&t, &probes, true)?, 0);
        }

        #[test]
        fn local_rules_without_address_or_port_conditions_never_search(
            raw in prop::collection::vec((a_key_match(), raw_action()), 0..12),
            input in prop::collection::vec((a_key_match(), filter_action()), 0..12),
            policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
            probes in prop::collection::vec(probe(), 4..8),
        ) {
            let raw = raw.into_iter().map(|(m, a)| raw_rule(m, a)).collect();
            let rules = input.into_iter().map(|(m, a)| filter_rule(m, a)).collect();
            let t = tables_with_input(raw, Chain { policy, rules });
            prop_assert_eq!(check_local_rules(&t, &probes, false)?, 0);
        }
    }

    #[test]
    fn the_transit_router_decides_local_packets_by_key_where_rules_allow() {
        let raw = vec![
            raw_rule(
                Match {
                    destination: Some(AddrMatch::Local),
                    ..Match::default()
                },
                RawAction::Accept,
            ),
            raw_rule(Match::default(), RawAction::NoTrack),
        ];
        let input = Chain {
            policy: FilterAction::Drop,
            rules: vec![
                filter_rule(
                    Match {
                        state: Some(CtState::Established.bit() | CtState::Related.bit()),
                        ..Match::default()
                    },
                    FilterAction::Accept,
                ),
                filter_rule(
                    Match {
                        protocol: Some(ICMP),
                        icmp_type: Some(8),
                        ..Match::default()
                    },
                    FilterAction::Accept,
                ),
                filter_rule(
                    Match {
                        protocol: Some(TCP),
                        destination_port: Some([(22, 22)].into_iter().collect()),
                        state: Some(CtState::New.bit()),
                        ..Match::default()
                    },
                    FilterAction::Accept,
                ),
            ],
        };
        let t = tables_with_input(raw, input);
        let lr = &t.local_rules;
        let none = LocalRules::NONE;
        for port in 0..4u8 {
            let at = |proto| lr.at(PortId(port), proto);
            for proto in [TCP, UDP, ICMP, GRE] {
                // `destination: local -> accept`: tracked.
                assert_eq!(
                    lr.raw(at(proto)),
                    Some((0, false)),
                    "port {port} proto {proto}"
                );
                for state in [CtState::Established, CtState::Related] {
                    assert_eq!(lr.input(at(proto), state), Some((0, FilterAction::Accept)));
                }
            }
            // ssh needs the destination port, a ping its ICMP type.
            assert_eq!(lr.input(at(TCP), CtState::New), None);
            assert_eq!(lr.input(at(ICMP), CtState::New), None);
            // Nothing else accepts new UDP or GRE, nor invalid TCP.
            for (proto, state) in [
                (UDP, CtState::New),
                (GRE, CtState::New),
                (TCP, CtState::Invalid),
                (UDP, CtState::Invalid),
            ] {
                assert_eq!(
                    lr.input(at(proto), state),
                    Some((none, FilterAction::Drop)),
                    "port {port} proto {proto} {state:?}"
                );
            }
        }
        assert_eq!(LocalRules::rule(none), None);
        assert_eq!(LocalRules::rule(0), Some(0));
    }
}
