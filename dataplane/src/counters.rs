//! Per-worker counters: plain `u64`s with one writer (the worker), read by
//! the control plane from snapshots published at housekeeping.
//!
//! Every frame a worker receives ends in exactly one of `forwarded`,
//! `to_host`, `consumed` or `drops[reason]`, so per worker
//! `rx = forwarded + to_host + consumed + sum(drops)` once no packet waits
//! in the neighbour queue (a queued packet is counted when it leaves:
//! forwarded, or dropped as `neighbour_unresolved`). Replies generated in
//! place of a dropped packet (ICMP errors, TCP RST) are extra TX, counted in
//! `generated`.

use crate::drop::DropReason;
use crate::packet::PortId;
use crate::rules::RuleList;

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl Count {
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.add_n(1, bytes as u64);
    }

    /// Add `packets` packets of `bytes` bytes in all.
    #[inline]
    pub fn add_n(&mut self, packets: u64, bytes: u64) {
        self.bytes += bytes;
        self.packets += packets;
    }

    /// Take back one packet of `bytes` bytes counted a moment ago (a packet
    /// handed to another worker, which counts it).
    #[inline]
    pub fn sub(&mut self, bytes: usize) {
        self.bytes -= bytes as u64;
        self.packets -= 1;
    }
}

/// A worker's counters.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct Counters {
    /// Received per port (index [`PortId`]; the host path is `PortId::HOST`).
    pub rx: [Count; 64],
    /// Sent per port, including generated replies.
    pub tx: [Count; 64],
    /// Drops by reason.
    pub drops: [u64; DropReason::COUNT],
    /// Frames forwarded out of a port (transit and host-originated).
    pub forwarded: u64,
    /// Packets delivered to the host path.
    pub to_host: u64,
    /// Frames handled without a reply or a drop (ARP replies learned).
    pub consumed: u64,
    /// Replies generated in place of dropped packets.
    pub generated: u64,
    /// IP packets that went through connection tracking.
    pub tracked: u64,
    /// IP packets marked NOTRACK.
    pub untracked: u64,
    /// ICMP errors sent.
    pub icmp_errors_sent: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_errors_rate_limited: u64,
    /// TCP resets sent for `reject`.
    pub tcp_resets_sent: u64,
    /// ARP requests for our addresses answered.
    pub arp_replies_sent: u64,
    /// ARP replies received.
    pub arp_replies_received: u64,
    /// ARP requests sent to resolve next hops.
    pub arp_requests_sent: u64,
    /// Next hops that did not answer three ARP requests.
    pub arp_resolution_failures: u64,
    /// IPv6 packets received (ports and host path); IPv4 is `rx` less these and ARP.
    pub ipv6_rx: u64,
    /// IPv6 packets forwarded out of a port (part of `forwarded`).
    pub ipv6_forwarded: u64,
    /// IPv6 packets delivered to the host path (part of `to_host`).
    pub ipv6_to_host: u64,
    /// IPv6 packets dropped (part of `drops`).
    pub ipv6_dropped: u64,
    /// Neighbour solicitations for our addresses received.
    pub nd_solicits_received: u64,
    /// Neighbour advertisements sent (answers to solicitations).
    pub nd_adverts_sent: u64,
    /// Neighbour advertisements received.
    pub nd_adverts_received: u64,
    /// Neighbour solicitations sent to resolve or probe next hops.
    pub nd_solicits_sent: u64,
    /// IPv6 next hops that did not answer three solicitations.
    pub nd_resolution_failures: u64,
    /// Router advertisements sent.
    pub ra_sent: u64,
    /// Router solicitations received.
    pub rs_received: u64,
    /// Raw rule hits, `[prerouting, output]`, per rule.
    pub raw_rules: [Vec<Count>; 2],
    /// Filter rule hits, per chain ([`crate::rules::ChainId`] order), per rule.
    pub filter_rules: [Vec<Count>; 3],
    /// Filter policy hits per chain.
    pub filter_policy: [Count; 3],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx: [Count::default(); 64],
            tx: [Count::default(); 64],
            drops: [0; DropReason::COUNT],
            forwarded: 0,
            to_host: 0,
            consumed: 0,
            generated: 0,
            tracked: 0,
            untracked: 0,
            icmp_errors_sent: 0,
            icmp_errors_rate_limited: 0,
            tcp_resets_sent: 0,
            arp_replies_sent: 0,
            arp_replies_received: 0,
            arp_requests_sent: 0,
            arp_resolution_failures: 0,
            ipv6_rx: 0,
            ipv6_forwarded: 0,
            ipv6_to_host: 0,
            ipv6_dropped: 0,
            nd_solicits_received: 0,
            nd_adverts_sent: 0,
            nd_adverts_received: 0,
            nd_solicits_sent: 0,
            nd_resolution_failures: 0,
            ra_sent: 0,
            rs_received: 0,
            raw_rules: Default::default(),
            filter_rules: Default::default(),
            filter_policy: [Count::default(); 3],
        }
    }
}

impl Counters {
    /// Count `pkts` packets of `bytes` IP bytes at the rule of `list` that
    /// decided: `None` is no rule for a raw hook (not counted) and the
    /// policy for a chain. The one place rule counters grow.
    #[inline]
    pub fn rule_hit(&mut self, list: RuleList, rule: Option<usize>, pkts: u64, bytes: u64) {
        let x = match (list, rule) {
            (RuleList::Raw(hook), Some(i)) => self.raw_rules[hook as usize].get_mut(i),
            (RuleList::Raw(_), None) => None,
            (RuleList::Filter(chain), Some(i)) => self.filter_rules[chain as usize].get_mut(i),
            (RuleList::Filter(chain), None) => Some(&mut self.filter_policy[chain as usize]),
        };
        if let Some(x) = x {
            x.add_n(pkts, bytes);
        }
    }

    /// Counter for a port.
    pub fn rx_of(&self, p: PortId) -> Count {
        self.rx[p.0 as usize & 63]
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Add another worker's counters to these (aggregation on the control side).
    pub fn merge(&mut self, o: &Counters) {
        for i in 0..64 {
            self.rx[i].packets += o.rx[i].packets;
            self.rx[i].bytes += o.rx[i].bytes;
            self.tx[i].packets += o.tx[i].packets;
            self.tx[i].bytes += o.tx[i].bytes;
        }
        for i in 0..DropReason::COUNT {
            self.drops[i] += o.drops[i];
        }
        self.forwarded += o.forwarded;
        self.to_host += o.to_host;
        self.consumed += o.consumed;
        self.generated += o.generated;
        self.tracked += o.tracked;
        self.untracked += o.untracked;
        self.icmp_errors_sent += o.icmp_errors_sent;
        self.icmp_errors_rate_limited += o.icmp_errors_rate_limited;
        self.tcp_resets_sent += o.tcp_resets_sent;
        self.arp_replies_sent += o.arp_replies_sent;
        self.arp_replies_received += o.arp_replies_received;
        self.arp_requests_sent += o.arp_requests_sent;
        self.arp_resolution_failures += o.arp_resolution_failures;
        self.ipv6_rx += o.ipv6_rx;
        self.ipv6_forwarded += o.ipv6_forwarded;
        self.ipv6_to_host += o.ipv6_to_host;
        self.ipv6_dropped += o.ipv6_dropped;
        self.nd_solicits_received += o.nd_solicits_received;
        self.nd_adverts_sent += o.nd_adverts_sent;
        self.nd_adverts_received += o.nd_adverts_received;
        self.nd_solicits_sent += o.nd_solicits_sent;
        self.nd_resolution_failures += o.nd_resolution_failures;
        self.ra_sent += o.ra_sent;
        self.rs_received += o.rs_received;
        for (a, b) in self.raw_rules.iter_mut().zip(o.raw_rules.iter()) {
            merge_rules(a, b);
        }
        for (a, b) in self.filter_rules.iter_mut().zip(o.filter_rules.iter()) {
            merge_rules(a, b);
        }
        for i in 0..3 {
            self.filter_policy[i].packets += o.filter_policy[i].packets;
            self.filter_policy[i].bytes += o.filter_policy[i].bytes;
        }
    }
}

fn merge_rules(a: &mut Vec<Count>, b: &[Count]) {
    if a.len() < b.len() {
        a.resize(b.len(), Count::default());
    }
    for (x, y) in a.iter_mut().zip(b) {
        x.packets += y.packets;
        x.bytes += y.bytes;
    }
}
