//! Connection tracking settings: table size, timeouts, TCP pick-up.

/// Connection tracking timeouts, in seconds (netfilter's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_established: u32,
    pub tcp_fin_wait: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub udp: u32,
    pub udp_stream: u32,
    pub icmp: u32,
    pub generic: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_established: 5 * 24 * 3600,
            tcp_fin_wait: 120,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp: 30,
            udp_stream: 120,
            icmp: 30,
            generic: 600,
        }
    }
}

/// Connection tracking settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Hard limit of entries per worker table.
    pub max_entries: u32,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Pick up TCP flows mid-stream (netfilter `nf_conntrack_tcp_loose`, on
    /// by default there): a non-SYN packet with no entry is NEW instead of
    /// INVALID.
    pub tcp_loose: bool,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_entries: 262_144,
            timeouts: Timeouts::default(),
            tcp_loose: true,
        }
    }
}
