//! The burst loop: a burst of frames through the pipeline, transit fast
//! path first, and the counting of its runs. Fast-path packets with the
//! same decision form a run, counted once when it ends.

use crate::dispatch::FastCode;
use crate::packet::{Pkt, Verdict, ETH_HDR_LEN};
use crate::route6::Reader;
use crate::rules::{ChainId, RawHook, RuleList};
use crate::tables::Tables;
use crate::wire::ipv4;

use super::rewrite;
use super::run::{Decision, Run, RunKey, RUN_MAX};
use super::{Pipeline, State};

impl Pipeline {
    /// Run a burst; `out[i]` gets the verdict of `pkts[i]`. Out of line: one
    /// call a burst, and a whole function for the fast path's registers.
    #[inline(never)]
    pub fn process_burst(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let n = pkts.len().min(out.len());
        let t = &*self.tables;
        // The IPv6 routes' slices, made once a burst, at its first IPv6
        // packet (an IPv4 burst never makes them).
        let mut r6 = None;
        // A run's byte sums fit 32 bits each below 65,536 packets.
        for (pkts, out) in pkts[..n]
            .chunks_mut(RUN_MAX)
            .zip(out[..n].chunks_mut(RUN_MAX))
        {
            Self::process_chunk(&mut self.st, t, pkts, out, &mut r6);
        }
    }

    /// [`Pipeline::process_burst`] for at most [`RUN_MAX`] packets. Fast-path
    /// packets with the same decision form a run, counted once when it ends
    /// (a packet with another decision, one for the general path, or the end
    /// of the chunk).
    #[inline(always)]
    fn process_chunk<'a>(
        st: &mut State,
        t: &'a Tables,
        pkts: &mut [Pkt<'_>],
        out: &mut [Verdict],
        r6: &mut Option<Reader<'a>>,
    ) {
        let mut run = Run::NONE;
        let n = pkts.len().min(out.len());
        // IPv4 from `at` until a packet its fast paths do not take, then
        // that packet and the IPv6 ones after it, and again.
        let mut at = 0;
        while at < n {
            at += st.fast4(t, &mut pkts[at..n], &mut out[at..n], &mut run, at);
            if at < n {
                at += st.not_fast4(t, r6, &mut pkts[at..n], &mut out[at..n], &mut run, at);
            }
        }
        st.flush_run(run.key, n - run.start, run.bytes);
    }
}

impl State {
    /// The IPv4 fast paths over `pkts`, packet `start` of the chunk whose
    /// run is `run_out` on, until a packet they do not take: the number
    /// taken. Out of line, one call for each stretch of IPv4: its loop has
    /// the registers to itself.
    #[inline(never)]
    fn fast4(
        &mut self,
        t: &Tables,
        pkts: &mut [Pkt<'_>],
        out: &mut [Verdict],
        run_out: &mut Run,
        start: usize,
    ) -> usize {
        // A copy of the run for the loop: through the reference it would
        // be stored to memory for every packet. Counted from this stretch's
        // first packet: the loop's index is then the packet's.
        let mut run = run_out.rebased(start);
        let taken = 'taken: {
            for (i, (p, v)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
                // One branch per outcome, the decision never kept in memory
                // (as an `Option` of it was: its spills cost 10 instructions
                // a packet).
                let Some(m) = self.fast_l3(p) else {
                    break 'taken i;
                };
                let total = m.total_len;
                match self.fast_decide(t, p, m) {
                    Some(f) if f.key != RunKey::NONE => {
                        self.run_add(&mut run, i, f.key, p.len, total);
                        // `fast_l3` read the header: the frame holds it.
                        if let Some(hdr) = p.buf.get_mut(..ETH_HDR_LEN + ipv4::HEADER_LEN) {
                            rewrite::fast(hdr, f.l2);
                        }
                        // Trailing Ethernet padding is not part of what we send.
                        p.len = ETH_HDR_LEN + total;
                        *v = Verdict::Tx(f.out);
                    }
                    // To the router (`fast_l3` checked the header).
                    Some(_) => {
                        let len = p.len;
                        let (verdict, key) = self.local(t, p);
                        self.run_add(&mut run, i, key, len, total);
                        *v = verdict;
                    }
                    None => break 'taken i,
                }
            }
            pkts.len()
        };
        *run_out = run.rebased_back(start);
        taken
    }

    /// The packets from one the IPv4 fast paths did not take, `pkts[0]`,
    /// number `start` of the chunk whose run is `run_out`: it, and the IPv6
    /// packets after it up to the next IPv4 one, through the IPv6 transit
    /// fast path, the IPv6 path to the router or the general path. Their
    /// verdicts into `out`; the number of packets taken (at least one).
    /// Each is added to the run here (a general-path packet, counted
    /// alone, ends the run). Out of line, so that the IPv4 loop keeps its
    /// registers; a loop of its own, so that IPv6 packets in a row pay the
    /// call and the IPv4 fast path's test once, not once a packet.
    #[inline(never)]
    fn not_fast4<'a>(
        &mut self,
        t: &'a Tables,
        r6: &mut Option<Reader<'a>>,
        pkts: &mut [Pkt<'_>],
        out: &mut [Verdict],
        run_out: &mut Run,
        start: usize,
    ) -> usize {
        let r6 = r6.get_or_insert_with(|| t.v6.routes.reader());
        // As in `fast4`: the run in registers.
        let mut run = run_out.rebased(start);
        let taken = 'taken: {
            for (i, (p, v)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
                *v = match self.fast6(t, r6, p) {
                    Some((total, f)) if f.key != RunKey::NONE => {
                        self.run_add(&mut run, i, f.key, p.len, total);
                        rewrite::fast6(&mut p.buf[..ETH_HDR_LEN + 8], f.l2);
                        p.len = ETH_HDR_LEN + total;
                        Verdict::Tx(f.out)
                    }
                    // To the router (`fast_l3_6` checked the header).
                    Some((total, _)) => {
                        let len = p.len;
                        let (v, key) = self.local6(t, p);
                        self.run_add(&mut run, i, key, len, total);
                        v
                    }
                    // IPv4 after the first packet: the IPv4 loop's.
                    None if i > 0 && p.buf.get(12..14) == Some(&[0x08, 0x00]) => break 'taken i,
                    None => {
                        let v = self.general(t, p);
                        self.run_add(&mut run, i, RunKey::NONE, 0, 0);
                        v
                    }
                };
            }
            pkts.len()
        };
        *run_out = run.rebased_back(start);
        taken
    }

    /// Count packet `i`, of `len` bytes received and `total` IP bytes, in
    /// the run of decision `key` ([`RunKey::NONE`]: counted elsewhere): a
    /// new key ends the run before it.
    #[inline(always)]
    fn run_add(&mut self, run: &mut Run, i: usize, key: RunKey, len: usize, total: usize) {
        if key != run.key {
            self.flush_run(run.key, i.wrapping_sub(run.start), run.bytes);
            *run = Run::new(key, i);
        }
        run.add(len, total);
    }

    /// Add a run of `pkts` fast-path packets with the same decision `key`
    /// and byte sums `bytes` (see [`Run`]) to the counters, as the general
    /// path counts each: received, raw rule, tracked or untracked, filter
    /// rule or policy, sent or delivered. Once a run, not once a packet.
    #[cold]
    #[inline(never)]
    fn flush_run(&mut self, key: RunKey, pkts: usize, bytes: u64) {
        if key == RunKey::NONE || pkts == 0 {
            return;
        }
        let pkts = pkts as u64;
        let (rx_bytes, ip_bytes) = Run::byte_sums(bytes);
        let (in_port, out, code) = match key.decision() {
            Decision::Local(k) => {
                self.count_local(k.in_port, k.rules(), pkts, rx_bytes, ip_bytes);
                self.counters.to_host += pkts;
                if k.v6 {
                    self.counters.ipv6_rx += pkts;
                    self.counters.ipv6_to_host += pkts;
                }
                return;
            }
            Decision::Transit {
                in_port,
                out,
                code,
                v6,
            } => {
                if v6 {
                    self.counters.ipv6_rx += pkts;
                    self.counters.ipv6_forwarded += pkts;
                }
                (in_port, out, code)
            }
        };
        let c = &mut self.counters;
        let (in_port, out) = (in_port.0 as usize, out.0 as usize);
        let (raw_rule, rule) = FastCode::rules(code);
        c.rx[in_port].add_n(pkts, rx_bytes);
        c.rule_hit(
            RuleList::Raw(RawHook::Prerouting),
            Some(raw_rule),
            pkts,
            ip_bytes,
        );
        c.untracked += pkts;
        c.rule_hit(RuleList::Filter(ChainId::Forward), rule, pkts, ip_bytes);
        c.tx[out].add_n(pkts, ip_bytes + ETH_HDR_LEN as u64 * pkts);
        c.forwarded += pkts;
    }
}
