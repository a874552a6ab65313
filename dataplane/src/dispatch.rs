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

use crate::filter::matches;
use crate::packet::PortId;
use crate::pipeline::Meta;
use crate::tables::{AddrMatch, Chain, CtState, FilterAction, Match, RawAction, RawRule, Tables};

/// Most entries a dispatch table may hold.
pub const MAX_ENTRIES: usize = 1 << 14;
/// Entry flag: the entry's rule (or the policy) is the first match.
const DECIDED: u16 = 0x8000;
/// Entry bits holding the first candidate rule (the rule count: none).
const START: u16 = 0x7fff;
/// The conditions a dispatch key decides.
const KEY: u16 = Match::NEED_IN | Match::NEED_OUT | Match::NEED_PROTO | Match::NEED_STATE;
/// The states in [`CtState`] order.
const STATES: [CtState; 5] = [
    CtState::New,
    CtState::Established,
    CtState::Related,
    CtState::Invalid,
    CtState::Untracked,
];

/// A rule list's dispatch table. Each key field maps to its class's offset
/// into `entries` (class times stride), so a lookup is five loads and adds.
#[derive(Clone, Debug)]
pub struct Dispatch {
    in_off: [u16; 64],
    /// Index 0: no output port yet; `1 + p`: port `p`.
    out_off: [u16; 65],
    proto_off: [u16; 256],
    state_off: [u16; 5],
    local_off: [u16; 2],
    entries: Box<[u16]>,
}

/// A packet's key values, for the build.
#[derive(Clone, Copy)]
struct Key {
    in_port: u8,
    out_port: Option<u8>,
    proto: u8,
    state: CtState,
    local: bool,
}

/// Whether the key conditions of `m` hold for `k`.
fn key_holds(m: &Match, k: &Key) -> bool {
    let need = m.need;
    (need & Match::NEED_IN == 0 || m.in_ports.unwrap_or(0) & (1u64 << k.in_port) != 0)
        && (need & Match::NEED_OUT == 0
            || k.out_port
                .is_some_and(|p| m.out_ports.unwrap_or(0) & (1u64 << p) != 0))
        && (need & Match::NEED_PROTO == 0 || m.protocol == Some(k.proto))
        && (need & Match::NEED_STATE == 0 || m.state.unwrap_or(0) & k.state.bit() != 0)
        && (!is_dst_local(m) || k.local)
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
    /// A table for `rules` (their `need` masks computed).
    pub fn build(rules: &[&Match]) -> Dispatch {
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
            out_off: std::array::from_fn(|i| off(out_c[i], s_out)),
            proto_off: std::array::from_fn(|i| off(proto_c[i], s_proto)),
            state_off: std::array::from_fn(|i| off(state_c[i], s_state)),
            local_off: std::array::from_fn(|i| off(local_c[i], s_local)),
            entries: vec![0; total].into_boxed_slice(),
        };
        for (ci, &in_port) in in_r.iter().enumerate() {
            for (co, &out_port) in out_r.iter().enumerate() {
                for (cp, &proto) in proto_r.iter().enumerate() {
                    for (cs, &state) in state_r.iter().enumerate() {
                        for (cl, &local) in local_r.iter().enumerate() {
                            let k = Key {
                                in_port,
                                out_port,
                                proto,
                                state,
                                local,
                            };
                            let e = match rules.iter().position(|m| key_holds(m, &k)) {
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
            out_off: [0; 65],
            proto_off: [0; 256],
            state_off: [0; 5],
            local_off: [0; 2],
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
        let at = self.in_off[in_port.0 as usize & 63] as usize
            + self.out_off[out] as usize
            + self.proto_off[proto as usize] as usize
            + self.state_off[state as usize] as usize
            + self.local_off[local_dst as usize] as usize;
        // Out of range cannot happen; rule 0, undecided, is right anyway.
        Entry(self.entries.get(at).copied().unwrap_or(0))
    }

    /// The index of the first rule of `rules` (the list this table was built
    /// for) that matches, or None for no match.
    #[inline(always)]
    pub fn first_match<R>(
        &self,
        rules: &[R],
        cond: impl Fn(&R) -> &Match,
        meta: &Meta,
        tables: &Tables,
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
            None => e.search(rules, cond, meta, tables),
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
    pub fn search<R>(
        self,
        rules: &[R],
        cond: impl Fn(&R) -> &Match,
        meta: &Meta,
        tables: &Tables,
    ) -> Option<usize> {
        let start = (self.0 & START) as usize;
        rules
            .get(start..)?
            .iter()
            .position(|r| matches(cond(r), meta, tables))
            .map(|i| start + i)
    }
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch::linear()
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
        let protos: Vec<u8> = (0..=255).collect();
        let conds: Vec<&Match> = raw
            .iter()
            .map(|r| &r.matches)
            .chain(fwd.rules.iter().map(|r| &r.matches))
            .filter(|m| m.need & Match::NEED_PROTO != 0)
            .collect();
        let (proto_c, proto_r) = classes(&protos, |pr| {
            conds.iter().map(|m| m.protocol == Some(pr)).collect()
        });
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
            in_off: std::array::from_fn(|i| if i < ports { (i * s_in) as u32 } else { 0 }),
            out_off: std::array::from_fn(|i| if i < ports { (i * s_out) as u32 } else { 0 }),
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
