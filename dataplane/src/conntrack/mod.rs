//! Connection tracking: the table of flows to and from the router.
//!
//! One table per worker, owned by it: no lock. Untracked packets never reach
//! this module. Memory is reserved at start-up for `max_entries` and never
//! grows: an entry is 64 bytes, its IPv6 side 24, the index 8 bytes a slot
//! with two slots per entry at a load of at most 1/2 (four slots an entry
//! when `max_entries` is a power of two), and 5 bytes of free list and
//! liveness: 125 bytes a connection (`entry_budget` checks <= 128).
//!
//! One table and one limit for IPv4 and IPv6 flows (early drop picks among
//! both). An IPv4 entry and its packed `u128` tuple are as they were before
//! IPv6, so the IPv4 path costs not one instruction more. An IPv6 entry
//! packs the low 32 bits of each address where IPv4 has its addresses and
//! sets [`flow::FAMILY6`] in the byte above `icmp` (zero for IPv4, so no
//! IPv4 tuple ever equals an IPv6 one); the high 96 bits of both addresses
//! live in a side array indexed like the entries (24 bytes, reserved up
//! front). An IPv6 lookup compares the packed tuple, then the side array;
//! its hash is over a keyed fold of the whole addresses, so that flows
//! differing only in high bits do not pile up on one probe run. ICMPv6
//! echo's reverse (128 <-> 129) and its direction check are in the
//! IPv6-only code ([`flow::reverse_packed6`], `update6`).
//!
//! Semantics follow netfilter:
//! - an existing flow's state is updated when its packet passes this stage,
//!   whatever the filter decides later;
//! - a new flow is only inserted ("confirmed") by [`Conntrack::confirm`]
//!   once the filter accepted its first packet;
//! - the packet's state is ESTABLISHED once the flow has seen a reply (or for
//!   the reply itself), NEW for further original-direction packets before
//!   that, RELATED for ICMP errors about a tracked flow, INVALID when the
//!   packet fits no flow and may not start one;
//! - when the table is full, a flow that is not assured (no full handshake
//!   or no reply seen) is evicted for the new one (early drop); if there is
//!   none, the new flow is refused: `conntrack_table_full`.

mod config;
mod flow;
pub mod tcp;

pub use config::{ConntrackConfig, Timeouts};
pub use flow::{
    icmp_inverse, icmpv6_inverse, is_icmp_reply, is_icmp_request, is_icmpv6_reply,
    is_icmpv6_request, CtResult, CtState, FlowKey, FlowKey6, FlowRef, PktInfo, PktInfo6,
};
use flow::{join6, reverse_high6, reverse_packed, reverse_packed6, High6, FAMILY6};
use tcp::{TcpState, Transition};

/// Protocol numbers tracked specially.
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// A NEW flow waiting for the filter's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// IPv6: the low 32 bits of the addresses in `src` and `dst`.
    key: FlowKey,
    tcp: TcpState,
    /// TCP: the first segment's [`tcp::row`] (original direction).
    last: u8,
    len: u16,
    v6: bool,
    /// IPv6: the rest of the addresses ([`FlowKey6::high`]); else zero.
    high: High6,
}

impl Pending {
    /// The IPv6 tuple of an IPv6 flow.
    fn key6(&self) -> FlowKey6 {
        FlowKey6 {
            src: join6(self.high, false, self.key.src),
            dst: join6(self.high, true, self.key.dst),
            sport: self.key.sport,
            dport: self.key.dport,
            proto: self.key.proto,
            icmp: self.key.icmp,
        }
    }
}

/// What a packet did to its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Update {
    /// The flow goes on; the packet's state.
    Live(CtState),
    /// The packet fits no transition: INVALID, the flow unchanged.
    Invalid,
    /// The packet ended the flow (a RST before any reply): remove it.
    Ended(CtState),
    /// A SYN reopening a closed flow: remove it, the packet is NEW.
    Reopen,
}

/// Why [`Conntrack::confirm`] could not insert a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmError {
    /// Full, and every flow is assured.
    TableFull,
}

const F_SEEN_REPLY: u8 = 1;
const F_ASSURED: u8 = 2;
/// TCP: a side started closing (netfilter `IP_CT_TCP_FLAG_CLOSE_INIT`, set
/// on the move to FIN_WAIT): a SYN on the closed flow reopens it.
const F_CLOSE_INIT: u8 = 4;

/// In [`Entry::last`]: the last segment went the reply way (netfilter
/// `last_dir`); the low bits hold its [`tcp::row`] (`last_index`).
const LAST_REPLY: u8 = 0x08;

/// One tracked flow. 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
struct Entry {
    /// The original-direction tuple, [`FlowKey::pack`]ed.
    key: u128,
    tcp: u8,
    flags: u8,
    /// TCP: row and direction of the last segment that was not invalid.
    last: u8,
    /// Second (of the table's clock) at which the flow expires.
    expires: u32,
    /// Hashes of the original and reply tuples (to find the index slots).
    hash: [u32; 2],
    packets: [u64; 2],
    bytes: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<Entry>() == 64);

/// The end of every update of a live flow by a packet that is not
/// INVALID: the reply seen, the new expiry (`None`: unchanged), the
/// counters; the packet's state.
#[inline(always)]
fn account(e: &mut Entry, reply: bool, len: u16, now: u32, timeout: Option<u32>) -> CtState {
    if reply {
        e.flags |= F_SEEN_REPLY;
    }
    if let Some(secs) = timeout {
        e.expires = now.saturating_add(secs);
    }
    e.packets[reply as usize] += 1;
    e.bytes[reply as usize] += len as u64;
    if reply || e.flags & F_SEEN_REPLY != 0 {
        CtState::Established
    } else {
        CtState::New
    }
}

/// In [`TCP_PLAIN`]: the segment needs [`Conntrack::update_tcp`].
const TCP_NOT_PLAIN: u8 = 0xff;

/// The index in [`TCP_PLAIN`] of a segment of direction `reply` and
/// [`tcp::row`] `row` on a flow whose [`Entry::tcp`] is `state` (always a
/// [`TcpState`]; columns 10 to 15 are CLOSE's, as [`TcpState::from_u8`]).
#[inline(always)]
const fn plain_index(reply: bool, row: u8, state: u8) -> usize {
    (reply as usize) << 7 | (row as usize & 7) << 4 | (state as usize & 15)
}

/// The TCP transitions that only move the state, by [`plain_index`]: the
/// new state, or [`TCP_NOT_PLAIN`] for what [`Conntrack::update_tcp`]
/// treats apart (INVALID, ignored segments, a SYN on a closed flow, the
/// move to FIN_WAIT, a RST), and for rows that do not exist.
const TCP_PLAIN: [u8; 256] = {
    let mut a = [TCP_NOT_PLAIN; 256];
    let mut reply = 0;
    while reply < 2 {
        let mut row = 0;
        while row <= tcp::ROW_NONE {
            let mut col = 0;
            while col < 16 {
                let old = TcpState::from_u8(col);
                let plain = match tcp::transition_at(old, reply == 1, row) {
                    _ if row == tcp::ROW_RST => None,
                    Transition::To(TcpState::SynSent)
                        if matches!(old, TcpState::TimeWait | TcpState::Close) =>
                    {
                        None
                    }
                    Transition::To(TcpState::FinWait) if !matches!(old, TcpState::FinWait) => None,
                    Transition::To(new) => Some(new),
                    Transition::Invalid | Transition::Ignore => None,
                };
                if let Some(new) = plain {
                    a[plain_index(reply == 1, row, col)] = new as u8;
                }
                col += 1;
            }
            row += 1;
        }
        reply += 1;
    }
    a
};

/// A flow as `routerctl conntrack` and `explain` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowView {
    /// Original-direction tuple; for an IPv6 flow its ports, protocol and
    /// ICMP type with the addresses 0 (they are in `key6`).
    pub key: FlowKey,
    /// An IPv6 flow's original-direction tuple; `None` for IPv4.
    pub key6: Option<FlowKey6>,
    /// TCP state, for TCP flows.
    pub tcp_state: Option<TcpState>,
    /// A reply has been seen.
    pub seen_reply: bool,
    /// Not evicted when the table is full.
    pub assured: bool,
    /// Seconds left before the flow expires.
    pub timeout: u32,
    /// Packets original, reply.
    pub packets: [u64; 2],
    /// Bytes original, reply.
    pub bytes: [u64; 2],
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtCounters {
    /// Flows inserted.
    pub inserted: u64,
    /// Flows removed on expiry.
    pub expired: u64,
    /// Flows evicted to make room (early drop).
    pub early_dropped: u64,
    /// New flows refused because the table was full.
    pub table_full: u64,
}

/// The per-worker connection table.
pub struct Conntrack {
    cfg: ConntrackConfig,
    /// TCP timeout by [`TcpState`], from `cfg` (16: any `& 15` indexes it;
    /// 10 to 15 are CLOSE's, as [`TcpState::from_u8`]).
    tcp_timeout: [u32; 16],
    entries: Vec<Entry>,
    /// By entry: an IPv6 flow's [`FlowKey6::high`] (zero for IPv4).
    high6: Vec<High6>,
    live: Vec<bool>,
    free: Vec<u32>,
    /// Open addressing, linear probing. 0 = empty; else
    /// `hash << 32 | (index * 2 + reply + 1)`.
    slots: Vec<u64>,
    mask: usize,
    seed: [u64; 2],
    /// Keys [`Conntrack::fold6`].
    seed6: [u64; 2],
    count: u32,
    gc_cursor: u32,
    counters: CtCounters,
}

/// The TCP timeout of each [`TcpState`], in its order.
fn tcp_timeouts(t: &Timeouts) -> [u32; 16] {
    let mut a = [0; 16];
    for (i, x) in a.iter_mut().enumerate() {
        *x = match TcpState::from_u8(i as u8) {
            TcpState::None | TcpState::SynSent | TcpState::SynSent2 => t.tcp_syn_sent,
            TcpState::SynRecv => t.tcp_syn_recv,
            TcpState::Established => t.tcp_established,
            TcpState::FinWait => t.tcp_fin_wait,
            TcpState::CloseWait => t.tcp_close_wait,
            TcpState::LastAck => t.tcp_last_ack,
            TcpState::TimeWait => t.tcp_time_wait,
            TcpState::Close => t.tcp_close,
        };
    }
    a
}

/// How many slots early drop looks at for a victim.
const EARLY_DROP_SCAN: usize = 64;

impl Conntrack {
    /// A table for `cfg.max_entries` flows; all memory is reserved here.
    pub fn new(cfg: ConntrackConfig) -> Conntrack {
        let max = cfg.max_entries.max(1) as usize;
        let nslots = (max * 4).next_power_of_two();
        Conntrack {
            cfg,
            tcp_timeout: tcp_timeouts(&cfg.timeouts),
            entries: Vec::with_capacity(max),
            high6: Vec::with_capacity(max),
            live: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            slots: vec![0u64; nslots],
            mask: nslots - 1,
            seed: {
                let r = ahash::RandomState::new();
                [r.hash_one(1u64) | 1, r.hash_one(2u64) | 1]
            },
            seed6: {
                let r = ahash::RandomState::new();
                [r.hash_one(3u64) | 1, r.hash_one(4u64) | 1]
            },
            count: 0,
            gc_cursor: 0,
            counters: CtCounters::default(),
        }
    }

    /// Apply new settings (timeouts, loose) from a reload. The size limit
    /// applies to new flows only; the table keeps its memory.
    pub fn set_config(&mut self, cfg: ConntrackConfig) {
        let cap = self.entries.capacity() as u32;
        self.tcp_timeout = tcp_timeouts(&cfg.timeouts);
        self.cfg = ConntrackConfig {
            max_entries: cfg.max_entries.min(cap),
            ..cfg
        };
    }

    /// Settings in force.
    pub fn config(&self) -> &ConntrackConfig {
        &self.cfg
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Table counters.
    pub fn counters(&self) -> CtCounters {
        self.counters
    }

    /// Bytes reserved by the table.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * (core::mem::size_of::<Entry>() + 1 + 4)
            + self.high6.capacity() * core::mem::size_of::<High6>()
            + self.slots.len() * core::mem::size_of::<u64>()
    }

    /// Keyed folded-multiply hash of the tuple (the core of ahash's
    /// fallback), with seeds drawn at random per table so that an attacker
    /// cannot aim flows at one probe run.
    #[inline(always)]
    fn hash(&self, key: FlowKey) -> u32 {
        self.hash_packed(key.pack())
    }

    /// [`Conntrack::hash`] of a packed tuple.
    #[inline(always)]
    fn hash_packed(&self, p: u128) -> u32 {
        let a = (p >> 64) as u64 ^ self.seed[0];
        let b = p as u64 ^ self.seed[1];
        let m = u128::from(a) * u128::from(b);
        let h = (m as u64) ^ ((m >> 64) as u64);
        (h ^ (h >> 32)) as u32
    }

    /// A keyed fold of a tuple's two IPv6 addresses into 64 bits (folded
    /// multiply as [`Conntrack::hash_packed`]), so that flows differing
    /// only in the high bits the packed tuple leaves out still spread over
    /// the index. One multiply for both: the destination's halves are
    /// swapped before they are mixed with the source, so that the two
    /// directions of a flow fold apart.
    #[inline(always)]
    fn fold6(&self, src: u128, dst: u128) -> u64 {
        let a = src ^ dst.rotate_left(64);
        let m = u128::from((a >> 64) as u64 ^ self.seed6[0]) * u128::from(a as u64 ^ self.seed6[1]);
        (m as u64) ^ ((m >> 64) as u64)
    }

    /// [`Conntrack::hash`] of an IPv6 tuple: of its packed form with the
    /// address words replaced by the addresses' [`Conntrack::fold6`].
    #[inline(always)]
    fn hash6(&self, key: FlowKey6) -> u32 {
        let addrs = u128::from(self.fold6(key.src, key.dst)) << 64;
        self.hash_packed(addrs | (key.pack() & u128::from(u64::MAX)))
    }

    /// [`Conntrack::find_packed`] of an IPv6 tuple: the packed tuple, then
    /// the high parts of the addresses in [`Conntrack::high6`]. Also finds
    /// IPv4 tuples, whose high parts are zero. The first slot inline, the
    /// probe on out of line: a loop here keeps its invariants on the stack.
    #[inline(always)]
    fn find6(&self, key: u128, high: High6, h: u32) -> Option<(usize, FlowRef)> {
        let i = h as usize & self.mask;
        match self.slot6_holds(i, key, high, h) {
            Some(Some(flow)) => Some((i, flow)),
            Some(None) => self.find6_after(i, key, high, h),
            None => None,
        }
    }

    /// [`Conntrack::find6`] from the slot after `i`.
    #[cold]
    #[inline(never)]
    fn find6_after(
        &self,
        mut i: usize,
        key: u128,
        high: High6,
        h: u32,
    ) -> Option<(usize, FlowRef)> {
        loop {
            i = (i + 1) & self.mask;
            match self.slot6_holds(i, key, high, h) {
                Some(Some(flow)) => return Some((i, flow)),
                Some(None) => {}
                None => return None,
            }
        }
    }

    /// Slot `i` for [`Conntrack::find6`]: `None` when it is empty (the
    /// probe ends), `Some(None)` when it holds another tuple.
    #[inline(always)]
    fn slot6_holds(&self, i: usize, key: u128, high: High6, h: u32) -> Option<Option<FlowRef>> {
        let s = self.slots[i];
        if s == 0 {
            return None;
        }
        if (s >> 32) as u32 != h {
            return Some(None);
        }
        let r = (s as u32) - 1;
        let index = r >> 1;
        let reply = r & 1 == 1;
        let e = &self.entries[index as usize];
        let hi = self.high6[index as usize];
        let (k, hi) = if reply {
            (reverse_packed6(e.key), reverse_high6(hi))
        } else {
            (e.key, hi)
        };
        // Word by word: an array compare goes through memory.
        let same = k == key && hi[0] == high[0] && hi[1] == high[1] && hi[2] == high[2];
        Some(same.then_some(FlowRef { index, reply }))
    }

    /// Find the slot position holding `key`.
    #[inline]
    fn find(&self, key: FlowKey, h: u32) -> Option<(usize, FlowRef)> {
        self.find_packed(key.pack(), h)
    }

    /// [`Conntrack::find`] of a packed tuple: an entry matches when its
    /// tuple, reversed for a reply slot, is the same two words.
    #[inline(always)]
    fn find_packed(&self, key: u128, h: u32) -> Option<(usize, FlowRef)> {
        let mut i = h as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == h {
                let r = (s as u32) - 1;
                let index = r >> 1;
                let reply = r & 1 == 1;
                let e = &self.entries[index as usize];
                let k = if reply { reverse_packed(e.key) } else { e.key };
                if k == key {
                    return Some((i, FlowRef { index, reply }));
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    fn slot_insert(&mut self, h: u32, index: u32, reply: bool) {
        let mut i = h as usize & self.mask;
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = ((h as u64) << 32) | (index * 2 + reply as u32 + 1) as u64;
    }

    /// Remove the slot for `(index, reply)` found from hash `h`, shifting
    /// back the run after it (linear probing deletion without tombstones).
    fn slot_remove(&mut self, h: u32, index: u32, reply: bool) {
        let want = index * 2 + reply as u32 + 1;
        let mut i = h as usize & self.mask;
        while self.slots[i] as u32 != want {
            debug_assert!(self.slots[i] != 0, "conntrack index lost a slot");
            i = (i + 1) & self.mask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = (s >> 32) as usize & self.mask;
            // Move s back to the hole at i if its home is not in (i, j].
            let in_between = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !in_between {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
    }

    fn remove(&mut self, index: u32) {
        let e = self.entries[index as usize];
        self.slot_remove(e.hash[0], index, false);
        self.slot_remove(e.hash[1], index, true);
        self.live[index as usize] = false;
        self.free.push(index);
        self.count -= 1;
    }

    /// Classify a packet that is not an ICMP error. Updates an existing
    /// flow in place; a NEW flow comes back as `pending`.
    #[inline]
    pub fn classify(&mut self, p: PktInfo, now: u32) -> CtResult {
        let h = self.hash(p.key);
        if let Some((_, flow)) = self.find(p.key, h) {
            if let Some(r) = self.settle(flow, now, |ct| ct.update(flow, &p, now)) {
                return r;
            }
        }
        self.new_flow(&p)
    }

    /// [`Conntrack::classify`] (and `classify6`) of a packet whose flow
    /// was found: the flow's answer after `update`, or `None` when the
    /// packet starts a new flow (the old one expired, or a SYN reopens a
    /// closed one), the old flow removed.
    #[inline(always)]
    fn settle(
        &mut self,
        flow: FlowRef,
        now: u32,
        update: impl FnOnce(&mut Self) -> Update,
    ) -> Option<CtResult> {
        if self.entries[flow.index as usize].expires <= now {
            self.remove(flow.index);
            self.counters.expired += 1;
            return None;
        }
        match update(self) {
            Update::Invalid => Some(CtResult::INVALID),
            Update::Live(state) => Some(CtResult {
                state,
                flow: Some(flow),
                pending: None,
            }),
            Update::Ended(state) => {
                self.remove(flow.index);
                Some(CtResult {
                    state,
                    flow: None,
                    pending: None,
                })
            }
            // A SYN reopening a closed flow: the old flow ends, the packet
            // starts a new one.
            Update::Reopen => {
                self.remove(flow.index);
                None
            }
        }
    }

    /// [`Conntrack::classify`] for a packet of a live flow, the common case
    /// a fast path inlines: its state, with the flow updated (or ended, for
    /// a RST before any reply). None, with nothing changed, for everything
    /// else (no flow, expired, a SYN reopening a closed one): then call
    /// `classify`.
    #[inline(always)]
    pub fn classify_existing(&mut self, p: &PktInfo, now: u32) -> Option<CtState> {
        let k = p.key.pack();
        let h = self.hash_packed(k);
        let (_, flow) = self.find_packed(k, h)?;
        if self.entries[flow.index as usize].expires <= now {
            return None;
        }
        match self.update(flow, p, now) {
            Update::Invalid => Some(CtState::Invalid),
            Update::Live(state) => Some(state),
            Update::Ended(state) => {
                self.remove(flow.index);
                Some(state)
            }
            Update::Reopen => None,
        }
    }

    /// Update a live flow with a packet. Nothing changes for an INVALID
    /// packet or a reopening SYN.
    #[inline(always)]
    fn update(&mut self, flow: FlowRef, p: &PktInfo, now: u32) -> Update {
        let t = &self.cfg.timeouts;
        let e = &mut self.entries[flow.index as usize];
        let timeout = match e.key as u8 {
            PROTO_TCP => {
                // One table load for the segments that only move the
                // state (an ACK of an established connection); the others
                // take `update_tcp`.
                let row = tcp::row(p.tcp_flags);
                let new = TCP_PLAIN[plain_index(flow.reply, row, e.tcp)];
                if new == TCP_NOT_PLAIN {
                    return self.update_tcp(flow, p.tcp_flags, p.len, now);
                }
                e.last = row | if flow.reply { LAST_REPLY } else { 0 };
                e.tcp = new;
                if new == TcpState::Established as u8 && e.flags & F_SEEN_REPLY != 0 {
                    e.flags |= F_ASSURED;
                }
                Some(self.tcp_timeout[new as usize & 15])
            }
            PROTO_UDP => {
                if flow.reply {
                    e.flags |= F_ASSURED;
                }
                Some(if flow.reply || e.flags & F_SEEN_REPLY != 0 {
                    t.udp_stream
                } else {
                    t.udp
                })
            }
            PROTO_ICMP => {
                // Requests go the original way, replies come back (the
                // type is in the tuple: nothing else can match).
                if is_icmp_reply(p.icmp_type) != flow.reply {
                    return Update::Invalid;
                }
                Some(t.icmp)
            }
            _ => Some(t.generic),
        };
        Update::Live(account(e, flow.reply, p.len, now, timeout))
    }

    /// [`Conntrack::update`] of a TCP flow, every case: netfilter's
    /// `tcp_packet`, what the transition table says, then the cases it
    /// treats apart. `update` itself only takes the transitions
    /// [`TCP_PLAIN`] holds, which this does the same. It takes the
    /// segment's flags and length by value: a `&PktInfo` would have the
    /// caller store its packet info in memory on every packet.
    #[cold]
    #[inline(never)]
    fn update_tcp(&mut self, flow: FlowRef, flags: u8, len: u16, now: u32) -> Update {
        let e = &mut self.entries[flow.index as usize];
        let old = TcpState::from_u8(e.tcp);
        let row = tcp::row(flags);
        let last = row | if flow.reply { LAST_REPLY } else { 0 };
        let to = match tcp::transition(old, flow.reply, flags) {
            Transition::Invalid => return Update::Invalid,
            // A SYN on a flow in TIME_WAIT or CLOSE (either way): a reopen
            // when a side had started closing, or when the last segment
            // was a RST from this side; else ignored, as a SYN the
            // endpoints may still answer.
            Transition::To(TcpState::SynSent)
                if matches!(old, TcpState::TimeWait | TcpState::Close) =>
            {
                let rst_here = e.last == (tcp::ROW_RST | (last & LAST_REPLY));
                if e.flags & F_CLOSE_INIT != 0 || rst_here {
                    return Update::Reopen;
                }
                None
            }
            Transition::Ignore => {
                // A SYN+ACK answering a SYN that was ignored: the endpoints
                // are in sync and conntrack is not; netfilter
                // resynchronises (it also checks that the ACK number
                // acknowledges that SYN; without sequence tracking, any
                // such SYN+ACK does).
                let resync = row == tcp::ROW_SYNACK
                    && e.last & !LAST_REPLY == tcp::ROW_SYN
                    && (e.last & LAST_REPLY) != (last & LAST_REPLY);
                resync.then_some(TcpState::SynRecv)
            }
            Transition::To(new) => Some(new),
        };
        e.last = last;
        let mut ended = false;
        let timeout = match to {
            // Ignored: accepted, the state and timeout unchanged.
            None => None,
            Some(new) => {
                if new == TcpState::FinWait && old != TcpState::FinWait {
                    e.flags |= F_CLOSE_INIT;
                }
                e.tcp = new as u8;
                if new == TcpState::Established && e.flags & F_SEEN_REPLY != 0 {
                    e.flags |= F_ASSURED;
                }
                // netfilter: "if only reply is a RST ... delete the
                // conntrack immediately" (a RST, either way, before any
                // reply was seen).
                ended = row == tcp::ROW_RST && e.flags & F_SEEN_REPLY == 0;
                Some(self.tcp_timeout[new as usize])
            }
        };
        let state = account(e, flow.reply, len, now, timeout);
        if ended {
            Update::Ended(state)
        } else {
            Update::Live(state)
        }
    }

    /// A `reject` answered a packet of the flow `key` belongs to with a TCP
    /// RST: the flow moves to CLOSE, as netfilter's `nf_ct_set_closing`
    /// does when `nf_send_reset` sends one. Nothing happens for a flow not
    /// in the table (a NEW packet's: it is never confirmed) or not TCP.
    pub fn set_closing(&mut self, key: FlowKey, now: u32) {
        let h = self.hash(key);
        if let Some((_, flow)) = self.find(key, h) {
            self.close(flow, now);
        }
    }

    /// [`Conntrack::set_closing`] for an IPv6 flow.
    pub fn set_closing6(&mut self, key: FlowKey6, now: u32) {
        let h = self.hash6(key);
        if let Some((_, flow)) = self.find6(key.pack(), key.high(), h) {
            self.close(flow, now);
        }
    }

    /// Move a live TCP flow to CLOSE.
    fn close(&mut self, flow: FlowRef, now: u32) {
        let close = self.tcp_timeout[TcpState::Close as usize];
        let e = &mut self.entries[flow.index as usize];
        if e.key as u8 != PROTO_TCP || e.expires <= now || e.tcp == TcpState::Close as u8 {
            return;
        }
        e.tcp = TcpState::Close as u8;
        e.expires = now.saturating_add(close);
    }

    #[inline]
    fn new_flow(&self, p: &PktInfo) -> CtResult {
        let tcp = match p.key.proto {
            PROTO_TCP => match tcp::initial(p.tcp_flags, self.cfg.tcp_loose) {
                Some(s) => s,
                None => return CtResult::INVALID,
            },
            PROTO_ICMP if !is_icmp_request(p.icmp_type) => return CtResult::INVALID,
            _ => TcpState::None,
        };
        CtResult {
            state: CtState::New,
            flow: None,
            pending: Some(Pending {
                key: p.key,
                tcp,
                last: tcp::row(p.tcp_flags),
                len: p.len,
                v6: false,
                high: [0; 3],
            }),
        }
    }

    /// [`Conntrack::classify`] for an IPv6 packet that is not an ICMPv6
    /// error.
    #[inline]
    pub fn classify6(&mut self, p: PktInfo6, now: u32) -> CtResult {
        let h = self.hash6(p.key);
        if let Some((_, flow)) = self.find6(p.key.pack(), p.key.high(), h) {
            if let Some(r) = self.settle(flow, now, |ct| ct.update6(flow, &p, now)) {
                return r;
            }
        }
        self.new_flow6(&p)
    }

    /// [`Conntrack::classify_existing`] for an IPv6 packet.
    #[inline(always)]
    pub fn classify_existing6(&mut self, p: &PktInfo6, now: u32) -> Option<CtState> {
        let h = self.hash6(p.key);
        let (_, flow) = self.find6(p.key.pack(), p.key.high(), h)?;
        if self.entries[flow.index as usize].expires <= now {
            return None;
        }
        match self.update6(flow, p, now) {
            Update::Invalid => Some(CtState::Invalid),
            Update::Live(state) => Some(state),
            Update::Ended(state) => {
                self.remove(flow.index);
                Some(state)
            }
            Update::Reopen => None,
        }
    }

    /// [`Conntrack::update`] of an IPv6 flow: TCP and UDP as there; ICMPv6
    /// echo here, so that the IPv4 path does not test for it.
    #[inline(always)]
    fn update6(&mut self, flow: FlowRef, p: &PktInfo6, now: u32) -> Update {
        let t = self.cfg.timeouts;
        let e = &mut self.entries[flow.index as usize];
        let timeout = match e.key as u8 {
            PROTO_TCP | PROTO_UDP => {
                let p4 = PktInfo {
                    key: FlowKey::default(),
                    tcp_flags: p.tcp_flags,
                    icmp_type: p.icmp_type,
                    len: p.len,
                };
                return self.update(flow, &p4, now);
            }
            PROTO_ICMPV6 => {
                if is_icmpv6_reply(p.icmp_type) != flow.reply {
                    return Update::Invalid;
                }
                t.icmp
            }
            _ => t.generic,
        };
        Update::Live(account(e, flow.reply, p.len, now, Some(timeout)))
    }

    #[inline]
    fn new_flow6(&self, p: &PktInfo6) -> CtResult {
        let tcp = match p.key.proto {
            PROTO_TCP => match tcp::initial(p.tcp_flags, self.cfg.tcp_loose) {
                Some(s) => s,
                None => return CtResult::INVALID,
            },
            PROTO_ICMPV6 if !is_icmpv6_request(p.icmp_type) => return CtResult::INVALID,
            _ => TcpState::None,
        };
        let k = p.key;
        CtResult {
            state: CtState::New,
            flow: None,
            pending: Some(Pending {
                key: FlowKey {
                    src: k.src as u32,
                    dst: k.dst as u32,
                    sport: k.sport,
                    dport: k.dport,
                    proto: k.proto,
                    icmp: k.icmp,
                },
                tcp,
                last: tcp::row(p.tcp_flags),
                len: p.len,
                v6: true,
                high: k.high(),
            }),
        }
    }

    /// Classify an ICMP error by the header it carries (`inner`, the tuple
    /// of the packet the error is about, as that packet was sent) and its
    /// outer destination `outer_dst`. RELATED when that packet belongs to a
    /// tracked flow and the error goes back to that packet's source, else
    /// INVALID: netfilter's `nf_conntrack_inet_error` ("outer daddr !=
    /// inner"), or anyone could have the router accept errors about a
    /// flow of someone else.
    #[inline]
    pub fn related(&mut self, inner: FlowKey, outer_dst: u32, now: u32) -> CtResult {
        if outer_dst != inner.src {
            return CtResult::INVALID;
        }
        let h = self.hash(inner);
        match self.find(inner, h) {
            Some((_, flow)) if self.entries[flow.index as usize].expires > now => CtResult {
                state: CtState::Related,
                flow: Some(flow),
                pending: None,
            },
            _ => CtResult::INVALID,
        }
    }

    /// [`Conntrack::related`] for an ICMPv6 error (types 1 to 4).
    #[inline]
    pub fn related6(&mut self, inner: FlowKey6, outer_dst: u128, now: u32) -> CtResult {
        if outer_dst != inner.src {
            return CtResult::INVALID;
        }
        let h = self.hash6(inner);
        match self.find6(inner.pack(), inner.high(), h) {
            Some((_, flow)) if self.entries[flow.index as usize].expires > now => CtResult {
                state: CtState::Related,
                flow: Some(flow),
                pending: None,
            },
            _ => CtResult::INVALID,
        }
    }

    /// Insert a NEW flow (of either family) whose first packet the filter
    /// accepted.
    pub fn confirm(&mut self, p: Pending, now: u32) -> Result<FlowRef, ConfirmError> {
        let (packed, h0, h1) = if p.v6 {
            let k = p.key6();
            (k.pack(), self.hash6(k), self.hash6(k.reverse()))
        } else {
            (p.key.pack(), self.hash(p.key), self.hash(p.key.reverse()))
        };
        // Two NEW packets of one flow in flight: the first one confirmed
        // wins. (IPv4 entries' high parts are zero, as `p.high`.)
        if let Some((_, flow)) = self.find6(packed, p.high, h0) {
            return Ok(flow);
        }
        if self.count >= self.cfg.max_entries && !self.early_drop(h0, now) {
            self.counters.table_full += 1;
            return Err(ConfirmError::TableFull);
        }
        let t = self.cfg.timeouts;
        let timeout = match p.key.proto {
            PROTO_TCP => match p.tcp {
                TcpState::Established => t.tcp_established,
                _ => t.tcp_syn_sent,
            },
            PROTO_UDP => t.udp,
            PROTO_ICMP if !p.v6 => t.icmp,
            PROTO_ICMPV6 if p.v6 => t.icmp,
            _ => t.generic,
        };
        let entry = Entry {
            key: packed,
            tcp: p.tcp as u8,
            flags: 0,
            last: p.last,
            expires: now.saturating_add(timeout),
            hash: [h0, h1],
            packets: [1, 0],
            bytes: [p.len as u64, 0],
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                self.high6[i as usize] = p.high;
                self.live[i as usize] = true;
                i
            }
            None => {
                // Within the capacity reserved in `new`: never reallocates.
                debug_assert!(self.entries.len() < self.entries.capacity());
                self.entries.push(entry);
                self.high6.push(p.high);
                self.live.push(true);
                (self.entries.len() - 1) as u32
            }
        };
        self.slot_insert(h0, index, false);
        self.slot_insert(h1, index, true);
        self.count += 1;
        self.counters.inserted += 1;
        Ok(FlowRef {
            index,
            reply: false,
        })
    }

    /// Evict one expired or unassured flow near `h`'s home slot.
    fn early_drop(&mut self, h: u32, now: u32) -> bool {
        let mut i = h as usize & self.mask;
        let mut seen = 0;
        let mut scanned = 0;
        while seen < EARLY_DROP_SCAN && scanned <= self.mask {
            let s = self.slots[i];
            scanned += 1;
            i = (i + 1) & self.mask;
            if s == 0 {
                continue;
            }
            seen += 1;
            let index = ((s as u32) - 1) >> 1;
            let e = &self.entries[index as usize];
            if e.expires <= now {
                self.remove(index);
                self.counters.expired += 1;
                return true;
            }
            if e.flags & F_ASSURED == 0 {
                self.remove(index);
                self.counters.early_dropped += 1;
                return true;
            }
        }
        false
    }

    /// Remove expired flows, looking at up to `budget` entries from where
    /// the last call stopped. Call at housekeeping.
    pub fn gc(&mut self, now: u32, budget: usize) -> usize {
        let n = self.entries.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            let i = self.gc_cursor as usize % n;
            self.gc_cursor = ((i + 1) % n) as u32;
            if self.live[i] && self.entries[i].expires <= now {
                self.remove(i as u32);
                self.counters.expired += 1;
                removed += 1;
            }
        }
        removed
    }

    /// Remove every flow.
    pub fn flush(&mut self) {
        self.slots.fill(0);
        self.entries.clear();
        self.high6.clear();
        self.live.clear();
        self.free.clear();
        self.count = 0;
        self.gc_cursor = 0;
    }

    /// The live, unexpired flows, both families.
    pub fn flows(&self, now: u32) -> impl Iterator<Item = FlowView> + '_ {
        (0..self.entries.len() as u32)
            .filter(move |&i| self.live[i as usize] && self.entries[i as usize].expires > now)
            .filter_map(move |i| self.flows_at(i, now))
    }

    /// The flow behind a reference.
    pub fn flow(&self, r: FlowRef, now: u32) -> Option<FlowView> {
        self.flows_at(r.index, now)
    }

    fn flows_at(&self, index: u32, now: u32) -> Option<FlowView> {
        let i = index as usize;
        if !*self.live.get(i)? {
            return None;
        }
        let e = &self.entries[i];
        let v6 = e.key & FAMILY6 != 0;
        let mut key = FlowKey::unpack(e.key);
        if v6 {
            (key.src, key.dst) = (0, 0);
        }
        Some(FlowView {
            key,
            key6: v6.then(|| FlowKey6::unpack(e.key, self.high6[i])),
            tcp_state: (e.key as u8 == PROTO_TCP).then(|| TcpState::from_u8(e.tcp)),
            seen_reply: e.flags & F_SEEN_REPLY != 0,
            assured: e.flags & F_ASSURED != 0,
            timeout: e.expires.saturating_sub(now),
            packets: e.packets,
            bytes: e.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    fn key(sport: u16, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src: 0xc612_0002,
            dst: 0xc612_0001,
            sport,
            dport,
            proto,
            icmp: 0,
        }
    }

    fn pkt(key: FlowKey, flags: u8) -> PktInfo {
        PktInfo {
            key,
            tcp_flags: flags,
            icmp_type: 0,
            len: 60,
        }
    }

    fn small(max: u32) -> Conntrack {
        Conntrack::new(ConntrackConfig {
            max_entries: max,
            ..ConntrackConfig::default()
        })
    }

    #[test]
    fn tcp_handshake_states_and_confirm_only_on_accept() {
        let mut ct = small(16);
        let k = key(40000, 22, PROTO_TCP);
        let r = ct.classify(pkt(k, SYN), 1);
        assert_eq!(r.state, CtState::New);
        assert!(ct.is_empty(), "nothing inserted before the filter accepts");
        // Filter drops: no confirm, the SYN-ACK finds nothing.
        let r2 = ct.classify(pkt(k.reverse(), SYN | ACK), 1);
        assert_eq!(r2.state, CtState::Invalid);
        // Now accepted.
        let r = ct.classify(pkt(k, SYN), 2);
        ct.confirm(r.pending.unwrap(), 2).unwrap();
        assert_eq!(ct.len(), 1);
        let r = ct.classify(pkt(k.reverse(), SYN | ACK), 2);
        assert_eq!(r.state, CtState::Established);
        assert!(r.flow.unwrap().reply);
        let r = ct.classify(pkt(k, ACK), 2);
        assert_eq!(r.state, CtState::Established);
        let v = ct.flows(2).next().unwrap();
        assert_eq!(v.tcp_state, Some(TcpState::Established));
        assert!(v.assured);
        assert_eq!(v.packets, [2, 1]);
        assert_eq!(v.timeout, 5 * 24 * 3600);
        // Close with RST.
        ct.classify(pkt(k.reverse(), RST), 3);
        let v = ct.flows(3).next().unwrap();
        assert_eq!(v.tcp_state, Some(TcpState::Close));
        assert_eq!(v.timeout, 10);
        assert_eq!(ct.flows(20).count(), 0, "closed flow expires after 10 s");
    }

    #[test]
    fn invalid_segments() {
        let mut ct = small(16);
        let k = key(1, 2, PROTO_TCP);
        assert_eq!(ct.classify(pkt(k, SYN | FIN), 1).state, CtState::Invalid);
        assert_eq!(ct.classify(pkt(k, 0), 1).state, CtState::Invalid);
        assert_eq!(ct.classify(pkt(k, 0xff), 1).state, CtState::Invalid);
        assert_eq!(ct.classify(pkt(k, FIN | ACK), 1).state, CtState::Invalid);
        // loose pickup of a mid-stream ACK is NEW, as in netfilter
        assert_eq!(ct.classify(pkt(k, ACK), 1).state, CtState::New);
        ct.set_config(ConntrackConfig {
            tcp_loose: false,
            ..*ct.config()
        });
        assert_eq!(ct.classify(pkt(k, ACK), 1).state, CtState::Invalid);
    }

    #[test]
    fn udp_and_icmp() {
        let mut ct = small(16);
        let k = key(5353, 53, PROTO_UDP);
        let r = ct.classify(pkt(k, 0), 10);
        ct.confirm(r.pending.unwrap(), 10).unwrap();
        assert_eq!(ct.flows(10).next().unwrap().timeout, 30);
        assert_eq!(ct.classify(pkt(k, 0), 11).state, CtState::New);
        assert_eq!(
            ct.classify(pkt(k.reverse(), 0), 12).state,
            CtState::Established
        );
        assert_eq!(ct.flows(12).next().unwrap().timeout, 120);
        assert_eq!(ct.classify(pkt(k, 0), 13).state, CtState::Established);

        let ik = key(7, 7, PROTO_ICMP);
        let mut req = pkt(ik, 0);
        req.icmp_type = 8;
        let mut rep = pkt(ik.reverse(), 0);
        rep.icmp_type = 0;
        assert_eq!(
            ct.classify(rep, 1).state,
            CtState::Invalid,
            "reply with no request"
        );
        let r = ct.classify(req, 1);
        ct.confirm(r.pending.unwrap(), 1).unwrap();
        assert_eq!(ct.classify(rep, 1).state, CtState::Established);
    }

    #[test]
    fn related_icmp_error_needs_a_tracked_flow() {
        let mut ct = small(16);
        let k = key(40000, 33434, PROTO_UDP);
        assert_eq!(ct.related(k, k.src, 1).state, CtState::Invalid);
        let r = ct.classify(pkt(k, 0), 1);
        ct.confirm(r.pending.unwrap(), 1).unwrap();
        assert_eq!(ct.related(k, k.src, 1).state, CtState::Related);
        let rk = k.reverse();
        assert_eq!(ct.related(rk, rk.src, 1).state, CtState::Related);
        assert_eq!(ct.related(k, k.src, 100).state, CtState::Invalid, "expired");
        // The error must go back to the quoted packet's source.
        assert_eq!(ct.related(k, k.dst, 1).state, CtState::Invalid);
        assert_eq!(ct.related(k, 0xc612_0505, 1).state, CtState::Invalid);
    }

    #[test]
    fn full_table_early_drops_unassured_and_keeps_assured() {
        let mut ct = small(4);
        // One assured flow.
        let est = key(1000, 22, PROTO_TCP);
        let r = ct.classify(pkt(est, SYN), 1);
        ct.confirm(r.pending.unwrap(), 1).unwrap();
        ct.classify(pkt(est.reverse(), SYN | ACK), 1);
        ct.classify(pkt(est, ACK), 1);
        // Fill with half-open flows, then keep flooding.
        for i in 0..100u16 {
            let k = key(2000 + i, 22, PROTO_TCP);
            let r = ct.classify(pkt(k, SYN), 1);
            ct.confirm(r.pending.unwrap(), 1).unwrap();
            assert!(ct.len() <= 4);
        }
        assert_eq!(ct.counters().early_dropped, 97);
        assert_eq!(ct.classify(pkt(est, ACK), 1).state, CtState::Established);
        // All assured: refuse.
        let mut ct = small(1);
        let r = ct.classify(pkt(est, SYN), 1);
        ct.confirm(r.pending.unwrap(), 1).unwrap();
        ct.classify(pkt(est.reverse(), SYN | ACK), 1);
        ct.classify(pkt(est, ACK), 1);
        let r = ct.classify(pkt(key(9, 9, PROTO_TCP), SYN), 1);
        assert_eq!(
            ct.confirm(r.pending.unwrap(), 1),
            Err(ConfirmError::TableFull)
        );
        assert_eq!(ct.counters().table_full, 1);
    }

    #[test]
    fn churn_keeps_index_consistent() {
        let mut ct = small(512);
        let mut live = std::collections::HashSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for now in 1..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % 700) as u16, 53, PROTO_UDP);
            if x & 0x100 == 0 {
                let r = ct.classify(pkt(k, 0), now / 100);
                if let Some(p) = r.pending {
                    if ct.confirm(p, now / 100).is_ok() {
                        live.insert(k);
                    }
                }
            } else {
                ct.gc(now / 100, 64);
            }
            assert!(ct.len() <= 512);
        }
        // Everything in the index is findable and expires consistently.
        for f in ct.flows(0).collect::<Vec<_>>() {
            assert_eq!(ct.related(f.key, f.key.src, 0).state, CtState::Related);
        }
        ct.gc(u32::MAX, 100_000);
        assert!(ct.is_empty());
        assert!(ct.slots.iter().all(|s| *s == 0));
    }

    #[test]
    fn tcp_plain_transitions_update_as_the_full_tcp_update() {
        // `update` takes the transitions in TCP_PLAIN itself and the rest
        // through `update_tcp`: for every state, every combination of
        // F_SEEN_REPLY, F_ASSURED and F_CLOSE_INIT, every `last`, both
        // directions and every flag byte, it does what `update_tcp` does.
        let mut ct = small(16);
        let k = key(40000, 22, PROTO_TCP);
        let r = ct.classify(pkt(k, SYN), 1);
        ct.confirm(r.pending.unwrap(), 1).unwrap();
        let start = ct.entries[0];
        let mut plain = 0;
        let cases = (0..10u8).flat_map(|state| {
            (0..8u8).flat_map(move |flags| (0..16u8).map(move |last| (state, flags, last)))
        });
        for (state, flags, last) in cases {
            let e = Entry {
                tcp: state,
                flags,
                last,
                ..start
            };
            for reply in [false, true] {
                for tcp_flags in 0..=255u8 {
                    let flow = FlowRef { index: 0, reply };
                    let p = PktInfo {
                        len: 1500,
                        ..pkt(if reply { k.reverse() } else { k }, tcp_flags)
                    };
                    ct.entries[0] = e;
                    let fast = ct.update(flow, &p, 5);
                    let after_fast = ct.entries[0];
                    ct.entries[0] = e;
                    let full = ct.update_tcp(flow, tcp_flags, p.len, 5);
                    assert_eq!(
                        (fast, after_fast),
                        (full, ct.entries[0]),
                        "{e:?} reply={reply} flags={tcp_flags:#04x}"
                    );
                    let row = tcp::row(tcp_flags);
                    plain += (TCP_PLAIN[plain_index(reply, row, state)] != TCP_NOT_PLAIN) as u32;
                }
            }
        }
        assert!(plain > 0, "some transitions take the table");
    }

    #[test]
    fn packed_tuples_reverse_and_unpack_as_the_tuples() {
        let mut keys = vec![key(40000, 22, PROTO_TCP), key(5353, 53, PROTO_UDP)];
        for t in 0..=255u8 {
            for code in [0, 1, 0xff] {
                keys.push(FlowKey {
                    icmp: (t as u16) << 8 | code,
                    ..key(0xbeef, 0xbeef, PROTO_ICMP)
                });
            }
            keys.push(FlowKey {
                icmp: (t as u16) << 8,
                ..key(7, 9, t)
            });
        }
        for k in keys {
            assert_eq!(FlowKey::unpack(k.pack()), k);
            assert_eq!(reverse_packed(k.pack()), k.reverse().pack(), "{k:?}");
        }
    }

    #[test]
    fn entry_budget() {
        // Both families in one table: entry, IPv6 side, index, free list,
        // liveness.
        let ct = small(1 << 20);
        let per_flow = ct.memory_bytes() / (1 << 20);
        assert_eq!(per_flow, 64 + 24 + 4 * 8 + 4 + 1);
        assert!(per_flow <= 128, "{per_flow} bytes per flow");
    }

    /// 2001:db8::2 and 2001:db8::1 (the router), with `sport`, `dport`.
    const H6: u128 = 0x2001_0db8 << 96 | 2;
    const R6: u128 = 0x2001_0db8 << 96 | 1;

    fn key6(sport: u16, dport: u16, proto: u8) -> FlowKey6 {
        FlowKey6 {
            src: H6,
            dst: R6,
            sport,
            dport,
            proto,
            icmp: 0,
        }
    }

    fn pkt6(key: FlowKey6, flags: u8) -> PktInfo6 {
        PktInfo6 {
            key,
            tcp_flags: flags,
            icmp_type: 0,
            len: 80,
        }
    }

    /// An ICMPv6 echo of type `t` (128 request, 129 reply), identifier `id`.
    fn echo6(src: u128, dst: u128, id: u16, t: u8) -> PktInfo6 {
        PktInfo6 {
            key: FlowKey6 {
                src,
                dst,
                sport: id,
                dport: id,
                proto: PROTO_ICMPV6,
                icmp: u16::from(t) << 8,
            },
            tcp_flags: 0,
            icmp_type: t,
            len: 104,
        }
    }

    /// Confirm `p`'s NEW flow.
    fn open6(ct: &mut Conntrack, p: PktInfo6, now: u32) -> FlowRef {
        let r = ct.classify6(p, now);
        assert_eq!(r.state, CtState::New, "{p:?}");
        ct.confirm(r.pending.unwrap(), now).unwrap()
    }

    #[test]
    fn v6_tcp_handshake_states_and_confirm_only_on_accept() {
        let mut ct = small(16);
        let k = key6(40000, 22, PROTO_TCP);
        let r = ct.classify6(pkt6(k, SYN), 1);
        assert_eq!(r.state, CtState::New);
        assert!(ct.is_empty(), "nothing inserted before the filter accepts");
        assert_eq!(
            ct.classify6(pkt6(k.reverse(), SYN | ACK), 1).state,
            CtState::Invalid
        );
        let r = ct.classify6(pkt6(k, SYN), 2);
        ct.confirm(r.pending.unwrap(), 2).unwrap();
        assert_eq!(ct.len(), 1);
        let r = ct.classify6(pkt6(k.reverse(), SYN | ACK), 2);
        assert_eq!(r.state, CtState::Established);
        assert!(r.flow.unwrap().reply);
        assert_eq!(
            ct.classify_existing6(&pkt6(k, ACK), 2),
            Some(CtState::Established)
        );
        let v = ct.flows(2).next().unwrap();
        assert_eq!(v.key6, Some(k));
        assert_eq!(
            (v.key.src, v.key.dst, v.key.sport, v.key.dport),
            (0, 0, 40000, 22)
        );
        assert_eq!(v.tcp_state, Some(TcpState::Established));
        assert!(v.assured);
        assert_eq!(v.packets, [2, 1]);
        assert_eq!(v.bytes, [160, 80]);
        assert_eq!(v.timeout, 5 * 24 * 3600);
        // A reject's RST closes it.
        ct.set_closing6(k, 3);
        let v = ct.flows(3).next().unwrap();
        assert_eq!(v.tcp_state, Some(TcpState::Close));
        assert_eq!(v.timeout, 10);
        assert_eq!(ct.flows(20).count(), 0, "closed flow expires after 10 s");
        // Another host's flow with the same ports is not this one.
        let other = FlowKey6 {
            src: H6 + (1 << 64),
            ..k
        };
        assert_eq!(ct.classify_existing6(&pkt6(other, ACK), 3), None);
    }

    #[test]
    fn v6_invalid_segments() {
        let mut ct = small(16);
        let k = key6(1, 2, PROTO_TCP);
        assert_eq!(ct.classify6(pkt6(k, SYN | FIN), 1).state, CtState::Invalid);
        assert_eq!(ct.classify6(pkt6(k, 0), 1).state, CtState::Invalid);
        assert_eq!(ct.classify6(pkt6(k, FIN | ACK), 1).state, CtState::Invalid);
        assert_eq!(ct.classify6(pkt6(k, ACK), 1).state, CtState::New, "loose");
        open6(&mut ct, pkt6(k, SYN), 1);
        assert_eq!(
            ct.classify6(pkt6(k.reverse(), SYN | FIN), 1).state,
            CtState::Invalid
        );
        assert_eq!(
            ct.flows(1).next().unwrap().tcp_state,
            Some(TcpState::SynSent)
        );
    }

    #[test]
    fn v6_udp_and_icmpv6_echo() {
        let mut ct = small(16);
        let k = key6(5353, 53, PROTO_UDP);
        open6(&mut ct, pkt6(k, 0), 10);
        assert_eq!(ct.flows(10).next().unwrap().timeout, 30);
        assert_eq!(ct.classify6(pkt6(k, 0), 11).state, CtState::New);
        assert_eq!(
            ct.classify6(pkt6(k.reverse(), 0), 12).state,
            CtState::Established
        );
        assert_eq!(ct.flows(12).next().unwrap().timeout, 120);
        ct.flush();

        let (req, rep) = (echo6(H6, R6, 7, 128), echo6(R6, H6, 7, 129));
        assert_eq!(
            rep.key,
            req.key.reverse(),
            "reply tuple: reverse, answering type"
        );
        assert_eq!(
            ct.classify6(rep, 1).state,
            CtState::Invalid,
            "reply, no request"
        );
        open6(&mut ct, req, 1);
        assert_eq!(ct.flows(1).next().unwrap().timeout, 30, "ICMP timeout");
        assert_eq!(ct.classify6(rep, 2).state, CtState::Established);
        assert_eq!(ct.classify6(req, 2).state, CtState::Established);
        assert_eq!(ct.len(), 1);
        // A request each way with one identifier: two flows.
        open6(&mut ct, echo6(R6, H6, 7, 128), 3);
        assert_eq!(ct.len(), 2);
        let mut keys: Vec<_> = ct.flows(3).map(|f| f.key6.unwrap()).collect();
        keys.sort_by_key(|k| k.src);
        assert_eq!(keys, [echo6(R6, H6, 7, 128).key, req.key]);
        // Another identifier is another flow; a lone reply to it is invalid.
        assert_eq!(
            ct.classify6(echo6(R6, H6, 8, 129), 3).state,
            CtState::Invalid
        );
    }

    #[test]
    fn v6_related_icmpv6_error_needs_a_tracked_flow() {
        let mut ct = small(16);
        let k = key6(40000, 33434, PROTO_UDP);
        assert_eq!(ct.related6(k, k.src, 1).state, CtState::Invalid);
        open6(&mut ct, pkt6(k, 0), 1);
        assert_eq!(ct.related6(k, k.src, 1).state, CtState::Related);
        let rk = k.reverse();
        assert_eq!(ct.related6(rk, rk.src, 1).state, CtState::Related);
        assert_eq!(
            ct.related6(k, k.src, 100).state,
            CtState::Invalid,
            "expired"
        );
        assert_eq!(ct.related6(k, k.dst, 1).state, CtState::Invalid);
        // The IPv4 flow with the same low address words is not it.
        let k4 = FlowKey {
            src: 2,
            dst: 1,
            ..key(40000, 33434, PROTO_UDP)
        };
        assert_eq!(ct.related(k4, k4.src, 1).state, CtState::Invalid);
        // An echo's error relates to the echo flow.
        let e = echo6(H6, R6, 9, 128);
        open6(&mut ct, e, 1);
        assert_eq!(ct.related6(e.key, H6, 1).state, CtState::Related);
    }

    /// An assured TCP flow of either family.
    fn assure(ct: &mut Conntrack, v6: bool, sport: u16) {
        if v6 {
            let k = key6(sport, 22, PROTO_TCP);
            open6(ct, pkt6(k, SYN), 1);
            ct.classify6(pkt6(k.reverse(), SYN | ACK), 1);
            ct.classify6(pkt6(k, ACK), 1);
        } else {
            let k = key(sport, 22, PROTO_TCP);
            let r = ct.classify(pkt(k, SYN), 1);
            ct.confirm(r.pending.unwrap(), 1).unwrap();
            ct.classify(pkt(k.reverse(), SYN | ACK), 1);
            ct.classify(pkt(k, ACK), 1);
        }
    }

    #[test]
    fn limit_shared_across_families_with_early_drop() {
        for v6_first in [false, true] {
            let mut ct = small(4);
            assure(&mut ct, v6_first, 1000);
            // Fill with half-open flows of the first family ...
            for i in 0..3u16 {
                if v6_first {
                    open6(&mut ct, pkt6(key6(2000 + i, 22, PROTO_TCP), SYN), 1);
                } else {
                    let r = ct.classify(pkt(key(2000 + i, 22, PROTO_TCP), SYN), 1);
                    ct.confirm(r.pending.unwrap(), 1).unwrap();
                }
            }
            assert_eq!(ct.len(), 4);
            // ... a flow of the other family takes an unassured one's place.
            if v6_first {
                let r = ct.classify(pkt(key(3000, 22, PROTO_TCP), SYN), 1);
                ct.confirm(r.pending.unwrap(), 1).unwrap();
            } else {
                open6(&mut ct, pkt6(key6(3000, 22, PROTO_TCP), SYN), 1);
            }
            assert_eq!(ct.len(), 4);
            assert_eq!(ct.counters().early_dropped, 1);
            let v6_flows = ct.flows(1).filter(|f| f.key6.is_some()).count();
            assert_eq!(v6_flows, if v6_first { 3 } else { 1 });
            // The assured flow is kept.
            let est = if v6_first {
                ct.classify_existing6(&pkt6(key6(1000, 22, PROTO_TCP), ACK), 1)
            } else {
                ct.classify_existing(&pkt(key(1000, 22, PROTO_TCP), ACK), 1)
            };
            assert_eq!(est, Some(CtState::Established));
        }
        // Full of assured flows of one family: the other is refused.
        for v6_first in [false, true] {
            let mut ct = small(2);
            assure(&mut ct, v6_first, 1000);
            assure(&mut ct, !v6_first, 1001);
            let p = if v6_first {
                ct.classify(pkt(key(9, 9, PROTO_TCP), SYN), 1).pending
            } else {
                ct.classify6(pkt6(key6(9, 9, PROTO_TCP), SYN), 1).pending
            };
            assert_eq!(ct.confirm(p.unwrap(), 1), Err(ConfirmError::TableFull));
            assert_eq!(ct.counters().table_full, 1);
        }
    }

    #[test]
    fn flows_whose_packed_tuples_collide_are_distinct() {
        let mut ct = small(16);
        let a = key6(5000, 53, PROTO_UDP);
        // With this seed every source of 2001:db8::/64 folds to one value
        // with a's destination: the hash no longer tells such flows apart,
        // only the side array.
        ct.seed6[0] = ((a.src ^ a.dst.rotate_left(64)) >> 64) as u64;
        let b = FlowKey6 {
            src: a.src | 0x7 << 32,
            ..a
        };
        assert_eq!((a.pack(), ct.hash6(a)), (b.pack(), ct.hash6(b)));
        open6(&mut ct, pkt6(a, 0), 1);
        open6(&mut ct, pkt6(b, 0), 1);
        // The IPv4 tuples with the same packed words (and with the folds'
        // words, which IPv6's hash is of) differ only in FAMILY6.
        let same_words = FlowKey {
            src: a.src as u32,
            dst: a.dst as u32,
            ..key(5000, 53, PROTO_UDP)
        };
        assert_eq!(same_words.pack() | FAMILY6, a.pack());
        let fold = ct.fold6(a.src, a.dst);
        let same_hash = FlowKey {
            src: (fold >> 32) as u32,
            dst: fold as u32,
            ..same_words
        };
        for k in [same_words, same_hash] {
            let r = ct.classify(pkt(k, 0), 1);
            assert_eq!(r.state, CtState::New, "{k:?}");
            ct.confirm(r.pending.unwrap(), 1).unwrap();
        }
        assert_eq!(ct.len(), 4);
        // Each reply finds its own flow.
        let ra = ct.classify6(pkt6(a.reverse(), 0), 2).flow.unwrap();
        let rb = ct.classify6(pkt6(b.reverse(), 0), 2).flow.unwrap();
        let r4 = ct.classify(pkt(same_words.reverse(), 0), 2).flow.unwrap();
        assert!(ra.reply && rb.reply && r4.reply);
        assert_ne!(ra.index, rb.index);
        assert_ne!(ra.index, r4.index);
        assert_eq!(ct.flow(ra, 2).unwrap().key6, Some(a));
        assert_eq!(ct.flow(rb, 2).unwrap().key6, Some(b));
        assert_eq!(ct.flow(r4, 2).unwrap().key6, None);
        assert_eq!(ct.flows(2).filter(|f| f.seen_reply).count(), 3);
    }

    #[test]
    fn churn_keeps_index_consistent_with_both_families() {
        let mut ct = small(512);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for now in 1..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (x % 700) as u16;
            if x & 0x100 == 0 {
                let r = if x & 0x200 == 0 {
                    ct.classify(pkt(key(port, 53, PROTO_UDP), 0), now / 100)
                } else {
                    // Hosts that differ in the high bits only.
                    let k = FlowKey6 {
                        src: H6 | u128::from(x >> 60) << 64,
                        ..key6(port, 53, PROTO_UDP)
                    };
                    ct.classify6(pkt6(k, 0), now / 100)
                };
                if let Some(p) = r.pending {
                    let _ = ct.confirm(p, now / 100);
                }
            } else {
                ct.gc(now / 100, 64);
            }
            assert!(ct.len() <= 512);
        }
        let flows: Vec<_> = ct.flows(0).collect();
        assert!(flows.iter().any(|f| f.key6.is_some()) && flows.iter().any(|f| f.key6.is_none()));
        // Everything in the index is findable, both ways, in its family.
        for f in flows {
            match f.key6 {
                Some(k) => {
                    assert_eq!(ct.related6(k, k.src, 0).state, CtState::Related);
                    let r = k.reverse();
                    assert_eq!(ct.related6(r, r.src, 0).state, CtState::Related);
                }
                None => assert_eq!(ct.related(f.key, f.key.src, 0).state, CtState::Related),
            }
        }
        ct.gc(u32::MAX, 100_000);
        assert!(ct.is_empty());
        assert!(ct.slots.iter().all(|s| *s == 0));
    }

    #[test]
    fn v6_packed_tuples_reverse_and_unpack_as_the_tuples() {
        let mut keys = vec![key6(40000, 22, PROTO_TCP), key6(5353, 53, PROTO_UDP)];
        for t in 0..=255u8 {
            keys.push(echo6(H6, R6 | 0xabcd << 80, 0xbeef, t).key);
            keys.push(FlowKey6 {
                icmp: (t as u16) << 8,
                ..key6(7, 9, t)
            });
        }
        for k in keys {
            let (p, hi) = (k.pack(), k.high());
            assert_eq!(FlowKey6::unpack(p, hi), k);
            let r = k.reverse();
            assert_eq!(reverse_packed6(p), r.pack(), "{k:?}");
            assert_eq!(reverse_high6(hi), r.high());
            assert_eq!(r.reverse(), k);
        }
        assert_eq!(
            echo6(H6, R6, 1, 128).key.reverse(),
            echo6(R6, H6, 1, 129).key
        );
    }
}
