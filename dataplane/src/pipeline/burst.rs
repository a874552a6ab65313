//! The burst loop: a burst of frames through the pipeline, transit fast
//! path first, and the counting of its runs. Fast-path packets with the
//! same decision form a run, counted once when it ends.

use crate::dispatch::FastCode;
use crate::packet::{Pkt, Verdict, ETH_HDR_LEN};
use crate::rewrite;
use crate::rules::ChainId;
use crate::wire::ipv4;

use super::local::LocalKey;
use super::{Pipeline, State};

/// Most packets in a run of the fast path (see `process_chunk`).
const RUN_MAX: usize = 1 << 16;

/// The key of no run.
pub(super) const NO_RUN: u64 = u64::MAX;

impl Pipeline {
    /// Run a burst; `out[i]` gets the verdict of `pkts[i]`. Out of line: one
    /// call a burst, and a whole function for the fast path's registers.
    #[inline(never)]
    pub fn process_burst(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let n = pkts.len().min(out.len());
        // A run's byte sums fit 32 bits each below 65,536 packets.
        for (pkts, out) in pkts[..n]
            .chunks_mut(RUN_MAX)
            .zip(out[..n].chunks_mut(RUN_MAX))
        {
            self.process_chunk(pkts, out);
        }
    }

    /// [`Pipeline::process_burst`] for at most [`RUN_MAX`] packets. Fast-path
    /// packets with the same decision form a run, counted once when it ends
    /// (a packet with another decision, one for the general path, or the end
    /// of the chunk): in locals, `key` its decision, `start` its first
    /// packet, `bytes` its received bytes (high half) and IP bytes (low).
    #[inline(always)]
    fn process_chunk(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let t = &*self.tables;
        let mut run = (NO_RUN, 0usize, 0u64);
        for (i, (p, v)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
            let fast = self
                .st
                .fast_l3(p)
                .and_then(|m| Some((m.total_len, self.st.fast_decide(t, p, m)?)));
            let hdr = p.buf.get_mut(..ETH_HDR_LEN + ipv4::HEADER_LEN);
            *v = match (fast, hdr) {
                (Some((total, f)), Some(hdr)) if f.key != NO_RUN => {
                    self.st.run_add(&mut run, i, f.key, p.len, total);
                    let (eth, ip) = hdr.split_at_mut(ETH_HDR_LEN);
                    if let (Ok(eth), Ok(h)) = (eth.try_into(), <&mut [u8; 20]>::try_from(ip)) {
                        // RFC 1812 5.3.1 TTL - 1 (fast_decide saw it above
                        // 1); the ethertype stays IPv4.
                        rewrite::decrement_ttl(h);
                        f.l2.write(eth);
                    }
                    // Trailing Ethernet padding is not part of what we send.
                    p.len = ETH_HDR_LEN + total;
                    Verdict::Tx(f.out)
                }
                // To the router (`fast_l3` checked the header).
                (Some((total, _)), _) => {
                    let len = p.len;
                    let (v, k) = self.st.local(t, p);
                    self.st.run_add(&mut run, i, k, len, total);
                    v
                }
                _ => {
                    self.st.run_add(&mut run, i, NO_RUN, 0, 0);
                    self.st.general(t, p)
                }
            };
        }
        let (key, start, bytes) = run;
        self.st.flush_run(key, pkts.len() - start, bytes);
    }
}

impl State {
    /// Count packet `i`, of `len` bytes received and `total` IP bytes, in
    /// the run of decision `key` (`NO_RUN`: counted elsewhere): a new key
    /// ends the run before it. `run` holds the key, the run's first packet,
    /// and its received (high half) and IP (low half) byte sums.
    #[inline(always)]
    pub(super) fn run_add(
        &mut self,
        run: &mut (u64, usize, u64),
        i: usize,
        key: u64,
        len: usize,
        total: usize,
    ) {
        if key != run.0 {
            self.flush_run(run.0, i - run.1, run.2);
            *run = (key, i, 0);
        }
        run.2 += (len as u64) << 32 | total as u64;
    }

    /// Add a run of fast-path packets with the same decision (ports and
    /// rules, packed in `key`) to the counters, as the general path counts
    /// each: received, raw rule, untracked, forward rule or policy, sent,
    /// forwarded. Once a run, not once a packet.
    #[cold]
    #[inline(never)]
    pub(super) fn flush_run(&mut self, key: u64, pkts: usize, bytes: u64) {
        if key == NO_RUN || pkts == 0 {
            return;
        }
        let pkts = pkts as u64;
        let (rx_bytes, ip_bytes) = (bytes >> 32, bytes & 0xffff_ffff);
        if let Some(k) = LocalKey::unpack(key) {
            self.count_local(k.in_port, k.rules(), pkts, rx_bytes, ip_bytes);
            self.counters.to_host += pkts;
            return;
        }
        let c = &mut self.counters;
        let in_port = (key & 63) as usize;
        let out = ((key >> 8) & 63) as usize;
        let (raw_rule, rule) = FastCode::rules((key >> 16) as u32);
        c.rx[in_port].add_n(pkts, rx_bytes);
        if let Some(x) = c.raw_rules[0].get_mut(raw_rule) {
            x.add_n(pkts, ip_bytes);
        }
        c.untracked += pkts;
        let fwd = ChainId::Forward as usize;
        let x = match rule {
            None => Some(&mut c.filter_policy[fwd]),
            Some(i) => c.filter_rules[fwd].get_mut(i),
        };
        if let Some(x) = x {
            x.add_n(pkts, ip_bytes);
        }
        c.tx[out].add_n(pkts, ip_bytes + ETH_HDR_LEN as u64 * pkts);
        c.forwarded += pkts;
    }
}
