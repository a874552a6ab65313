//! The routerd YAML configuration: schema, validation, and compilation to
//! [`dataplane::tables::TablesSpec`].
//!
//! Owns reading the file and every check a user can act on. Every error is
//! one [`ConfigError`] that names the file, line, column and field path.
//! Never touches devices or the dataplane: MACs of interfaces are filled in
//! at start-up ([`Mac::ZERO`] here).
//!
//! # Schema
//!
//! Only `interfaces` is required; every other section has the default shown.
//! Unknown keys are errors at every level: each mapping's keys come from
//! the table in `schema.rs`, which also gives the JSON Schema
//! (`routerctl generate schema`).
//!
//! ```yaml
//! dataplane:
//!   workers: [0]           # cores for the poll-mode workers, one worker each
//!   burst: 64              # frames per RX/TX burst, 1..=256
//!   umem_frames: 16384     # UMEM frames per worker: a power of two, >= 512 and
//!                          # >= 4 * burst (2 KiB each: 32 MiB, root or CAP_IPC_LOCK);
//!                          # each port's fill ring keeps up to 4096 of them
//!   xdp_mode: native       # native | generic (driver XDP or the skb fallback)
//!   xdp_bind: auto         # auto | copy | zerocopy: how the AF_XDP sockets bind
//!                          # (auto: zero-copy where the driver offers it, copy under
//!                          # generic XDP; zerocopy: refuse to start without it); the
//!                          # log says per socket what the kernel gave
//!   busy_poll: false       # preferred busy polling: SO_PREFER_BUSY_POLL, SO_BUSY_POLL
//!                          # (20 us) and SO_BUSY_POLL_BUDGET (burst) on every AF_XDP
//!                          # socket, the ports' napi_defer_hard_irqs=2 and
//!                          # gro_flush_timeout=200000 while routerd runs (put back at
//!                          # exit), workers never sleep; the log says per socket
//!                          # whether the kernel gave it a NAPI id (without one, as on
//!                          # veth since 6.13, busy polling has no effect)
//!   ip_options: forward    # forward (untouched) | drop packets with IP options
//! control:
//!   socket: /run/afxdp-router/routerd.sock   # routerctl API, an absolute path
//! interfaces:              # at most 62; order gives the port numbers
//!   - name: wan            # name used by rules and routes (not host/local)
//!     device: r0           # kernel netdev taken over (Linux name rules)
//!     addresses: [198.18.0.1/24, 2001:db8::1/64]   # address/len of either family;
//!                          # may be empty; no link-local (fe80::/64 comes from the MAC)
//!     mtu: 1500            # 68..=9000
//!     router_advertisements: true   # IPv6 RAs (RFC 4861); off when absent. true:
//!                          # every /64 on-link prefix for SLAAC, or a map:
//!                          # { interval: 200 (4..=1800), router_lifetime: 1800 (0 or
//!                          #   interval..=9000), hop_limit: 64, managed: false,
//!                          #   other: false, mtu: true, prefixes: [2001:db8::/64 |
//!                          #   { prefix, valid_lifetime: 2592000, preferred_lifetime:
//!                          #   604800 (seconds or infinity), on_link: true,
//!                          #   autonomous: true (needs a /64) }] }
//! host:
//!   tun: rtr0              # TUN carrying the router's own traffic to the kernel
//!   enabled: true          # false: no host path (pure forwarder)
//! routes:                  # exactly one of via, interface, blackhole, unreachable
//!   - to: 203.0.113.0/24   # a prefix (no host bits) or default
//!     via: 198.19.0.2      # a gateway on a connected network
//!   - to: 192.0.2.0/24
//!     interface: lan       # directly connected out of an interface
//!   - to: 198.51.100.0/24
//!     blackhole: true      # drop silently (or unreachable: true: ICMP net unreachable)
//!   - to: 198.18.128.0/24
//!     via: [198.19.0.2, 198.19.0.3]   # several gateways: ECMP, a flow keeps its path
//!                          # (IPv4 only for now)
//!   - to: default          # with an IPv6 gateway: IPv6's default route (::/0)
//!     via: 2001:db8::2     # a gateway on an on-link prefix
//!   - to: 2001:db8:5::/48
//!     via: fe80::5         # a link-local gateway needs its interface
//!     interface: lan
//!   - to: "::/0"           # IPv6's default by name: `to: default` without a
//!     blackhole: true      # gateway is IPv4's
//! kernel_routes:           # follow a kernel table (BIRD, FRR, ip route); off when absent
//!   table: main            # main or a table number (not 255, local)
//!   protocols: [bgp, bird, zebra, static]   # rtm_protocol names or 0-255; default:
//!                          # every protocol but kernel; never routerd's own (250)
//! neighbors:               # static ARP/NDP entries, each on a connected network
//!   - address: 198.19.0.2
//!     mac: "02:00:00:00:00:02"
//!   - address: fe80::2     # link-local: needs interface; a global one does not
//!     interface: wan
//!     mac: "02:00:00:00:00:03"
//! conntrack:
//!   max_entries: 262144    # per worker table, 1..=16777216
//!   tcp_loose: true        # pick up TCP flows mid-stream (netfilter default)
//!   timeouts:              # 30s, 2m, 1h, 5d or plain seconds; never 0
//!     tcp_syn_sent: 2m
//!     tcp_syn_recv: 1m
//!     tcp_established: 5d
//!     tcp_fin_wait: 2m
//!     tcp_close_wait: 1m
//!     tcp_last_ack: 30s
//!     tcp_time_wait: 2m
//!     tcp_close: 10s
//!     udp: 30s
//!     udp_stream: 2m
//!     icmp: 30s
//!     generic: 10m
//! icmp_errors: { rate: 10, burst: 20 }   # per-source token bucket, both >= 1
//! metrics: { listen: "127.0.0.1:9477" }  # off when absent
//! raw:                     # before conntrack; first match wins; default: tracked
//!   prerouting:            # packets from the ports
//!     - match: { destination: local }
//!       action: accept     # accept (tracked) | notrack
//!       comment: host traffic is tracked
//!   output: []             # packets from the host
//! filter:                  # chains input, forward, output
//!   input:
//!     policy: drop         # accept | drop (default accept)
//!     rules:               # first match wins
//!       - match: { state: [established, related] }
//!         action: accept   # accept | drop | reject
//! ```
//!
//! Match keys (all present ones must hold): `in`, `out` (an interface name,
//! a list of them, or `host`), `source`, `destination` (a prefix, a list of
//! them, IPv4 and IPv6 mixed, or `local`: the router's addresses of both
//! families), `family` (`ipv4` or `ipv6`), `protocol` (`tcp`, `udp`,
//! `icmp`, `icmpv6` or 0-255), `source_port`, `destination_port` (a port,
//! `"lo-hi"` or a list; needs `protocol: tcp` or `udp`), `state` (list of
//! new, established, related, invalid, untracked; not in raw rules),
//! `icmp_type`, `icmp_code` (nftables names or numbers; need `protocol:
//! icmp`), `icmpv6_type`, `icmpv6_code` (nftables names or numbers; imply
//! `protocol: icmpv6`). One rule list serves both families, as nftables'
//! `inet` table: a condition with prefixes of one family only never matches
//! a packet of the other. `in`/`out` values that can never match in a chain
//! (`out` in raw, `out: wan` in input, `in: host` in forward, ...) and rules
//! no family can match (`family: ipv4` with only IPv6 prefixes, ICMPv6 in
//! an IPv4 rule) are errors.

mod decode;
pub mod diff;
mod error;
mod rules;
pub mod schema;
mod yaml;

pub use error::ConfigError;

use dataplane::addr::{Ipv4Prefix, Mac};
use dataplane::tables::{NextHop, TablesSpec};
use dataplane::tables6::NextHop6;
pub use dataplane::xsk::BindMode;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver mode (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// The generic skb fallback (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl XdpMode {
    /// Lower-case name as in the config.
    pub const fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

/// Settings of the poll-mode workers and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// Cores, one pinned worker each; distinct and non-empty.
    pub workers: Vec<usize>,
    /// Frames per burst, 1..=256.
    pub burst: u16,
    /// UMEM frames, a power of two.
    pub umem_frames: u32,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// Prefer busy polling on the AF_XDP sockets.
    pub busy_poll: bool,
    /// How the AF_XDP sockets bind: `auto`, `copy` or `zerocopy`.
    pub xdp_bind: BindMode,
}

/// The name of a bind mode as in the config.
pub const fn bind_name(b: BindMode) -> &'static str {
    match b {
        BindMode::Auto => "auto",
        BindMode::Copy => "copy",
        BindMode::ZeroCopy => "zerocopy",
    }
}

impl Default for DataplaneSettings {
    fn default() -> Self {
        DataplaneSettings {
            workers: vec![0],
            burst: 64,
            umem_frames: 16384,
            xdp_mode: XdpMode::Native,
            busy_poll: false,
            xdp_bind: BindMode::Auto,
        }
    }
}

/// What `kernel_routes` asks: the kernel table routerd follows and the
/// route protocols it takes from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoutesConfig {
    /// The table (`main` is 254).
    pub table: u32,
    /// `rtm_protocol` values to take; `None`: every protocol but `kernel`
    /// (2, the kernel's own connected routes).
    pub protocols: Option<Vec<u8>>,
}

impl KernelRoutesConfig {
    /// Whether routes of `protocol` are mirrored (never routerd's own).
    pub fn takes(&self, protocol: u8) -> bool {
        if protocol == RTPROT_ROUTERD {
            return false;
        }
        match &self.protocols {
            Some(p) => p.contains(&protocol),
            None => protocol != 2,
        }
    }

    /// The name of a protocol number (`bird`), or the number.
    pub fn protocol_name(protocol: u8) -> String {
        decode::RT_PROTOS
            .iter()
            .find(|(_, n)| *n == protocol)
            .map_or_else(|| protocol.to_string(), |(name, _)| (*name).to_string())
    }
}

/// The `rtm_protocol` of routerd's own kernel routes (the host path's).
pub const RTPROT_ROUTERD: u8 = 250;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/afxdp-router/routerd.sock";
/// Default TUN device of the host path.
pub const DEFAULT_TUN: &str = "rtr0";
/// Most interfaces a config may have.
pub const MAX_INTERFACES: usize = 62;

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Workers and ports.
    pub dataplane: DataplaneSettings,
    /// Unix socket of the routerctl API.
    pub control_socket: PathBuf,
    /// TUN device of the host path; `None` when the host path is off.
    pub tun: Option<String>,
    /// Prometheus-style metrics listener; `None` when off.
    pub metrics_listen: Option<SocketAddr>,
    /// Routes mirrored from the kernel's table; `None` when off.
    pub kernel_routes: Option<KernelRoutesConfig>,
    /// The tables part: interfaces in config order (`PortId(i)` is
    /// `spec.interfaces[i]`, MAC zero), configured routes (connected and
    /// local ones are added by the tables), static neighbours, raw and filter
    /// rules, conntrack, IP options and ICMP error settings.
    pub spec: TablesSpec,
}

/// Decodes `routerctl capture --match` (a YAML/JSON flow mapping of the
/// rule match keys above, `state` excepted) against `interfaces`; an error
/// reads `--match:LINE:COLUMN: match.key: what is wrong`.
pub fn capture_match(
    text: &str,
    interfaces: &[dataplane::tables::Interface],
) -> Result<dataplane::rules::Match, ConfigError> {
    decode::decode_match_text(text, interfaces).map_err(|mut e| {
        e.file = PathBuf::from("--match");
        e
    })
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::from_str(&text, path)
    }

    /// Validates config text; `path` is used in errors and kept in the result.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        decode::decode(text, path).map_err(|mut e| {
            e.file = path.to_path_buf();
            e
        })
    }

    /// The input of [`dataplane::tables::Tables::build`]. Interface MACs are
    /// [`Mac::ZERO`]: the caller fills them from the devices.
    pub fn tables_spec(&self) -> TablesSpec {
        let mut spec = self.spec.clone();
        for i in &mut spec.interfaces {
            i.mac = Mac::ZERO;
        }
        spec
    }

    /// A short human summary for `routerd --check`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: configuration is valid", self.path.display());
        let _ = writeln!(s, "interfaces: {}", self.spec.interfaces.len());
        for i in &self.spec.interfaces {
            let addrs: Vec<String> = (i.addresses.iter().map(|a| a.to_string()))
                .chain(i.addresses6.iter().map(|a| a.to_string()))
                .collect();
            let addrs = if addrs.is_empty() {
                "no addresses".to_string()
            } else {
                addrs.join(" ")
            };
            let ra = if i.ra.is_some() {
                ", router advertisements"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {} (device {}, mtu {}): {addrs}{ra}",
                i.name, i.device, i.mtu
            );
        }
        let connected: usize = (self.spec.interfaces.iter())
            .map(|i| i.addresses.len() + i.addresses6.len())
            .sum();
        let _ = writeln!(
            s,
            "routes: {} configured, {} connected",
            self.spec.routes.len() + self.spec.v6.routes.len(),
            connected
        );
        for r in &self.spec.routes {
            let to = if r.prefix == Ipv4Prefix::DEFAULT {
                "default".to_string()
            } else {
                r.prefix.to_string()
            };
            let paths: Vec<String> = r.paths().map(|n| self.next_hop_text(n)).collect();
            let _ = writeln!(s, "  {to} {}", paths.join(", "));
        }
        for r in &self.spec.v6.routes {
            let _ = writeln!(s, "  {} {}", r.prefix, self.next_hop6_text(r.next_hop));
        }
        let _ = writeln!(
            s,
            "neighbours: {} static",
            self.spec.neighbours.len() + self.spec.v6.neighbours.len()
        );
        let _ = writeln!(
            s,
            "raw: prerouting {}, output {}",
            rules(self.spec.raw_prerouting.len()),
            rules(self.spec.raw_output.len())
        );
        for (name, c) in [
            ("input", &self.spec.filter_input),
            ("forward", &self.spec.filter_forward),
            ("output", &self.spec.filter_output),
        ] {
            let _ = writeln!(
                s,
                "filter {name}: {}, policy {}",
                rules(c.rules.len()),
                c.policy.name()
            );
        }
        let _ = writeln!(
            s,
            "conntrack: max {} entries, tcp_loose {}",
            self.spec.conntrack.max_entries,
            if self.spec.conntrack.tcp_loose {
                "on"
            } else {
                "off"
            }
        );
        let d = &self.dataplane;
        let _ = writeln!(
            s,
            "dataplane: workers on cores {:?}, burst {}, {} umem frames, xdp {}, bind {}{}",
            d.workers,
            d.burst,
            d.umem_frames,
            d.xdp_mode.name(),
            bind_name(d.xdp_bind),
            if d.busy_poll { ", busy poll" } else { "" }
        );
        let _ = writeln!(
            s,
            "host path: {}",
            self.tun
                .as_deref()
                .map_or("off".to_string(), |t| format!("tun {t}"))
        );
        let _ = writeln!(
            s,
            "kernel routes: {}",
            match &self.kernel_routes {
                None => "off".to_string(),
                Some(k) => format!(
                    "table {}, protocols {}",
                    if k.table == 254 {
                        "main".to_string()
                    } else {
                        k.table.to_string()
                    },
                    match &k.protocols {
                        Some(p) => p
                            .iter()
                            .map(|&x| KernelRoutesConfig::protocol_name(x))
                            .collect::<Vec<_>>()
                            .join(", "),
                        None => "all but kernel".into(),
                    }
                ),
            }
        );
        let _ = writeln!(s, "control socket: {}", self.control_socket.display());
        let _ = writeln!(
            s,
            "metrics: {}",
            self.metrics_listen
                .map_or("off".to_string(), |a| format!("listen {a}"))
        );
        s
    }

    fn port_name(&self, p: dataplane::packet::PortId) -> String {
        self.spec
            .interfaces
            .get(p.0 as usize)
            .map_or("?", |i| i.name.as_str())
            .to_string()
    }

    fn next_hop6_text(&self, n: NextHop6) -> String {
        match n {
            NextHop6::Local => "local".into(),
            NextHop6::Connected(p) => format!("dev {}", self.port_name(p)),
            NextHop6::Via { port, gateway } => {
                format!(
                    "via {} dev {}",
                    Ipv6Addr::from(gateway),
                    self.port_name(port)
                )
            }
            NextHop6::Blackhole => "blackhole".into(),
            NextHop6::Unreachable => "unreachable".into(),
        }
    }

    fn next_hop_text(&self, n: NextHop) -> String {
        let name = |p: dataplane::packet::PortId| self.port_name(p);
        match n {
            NextHop::Local => "local".into(),
            NextHop::Connected(p) => format!("dev {}", name(p)),
            NextHop::Via { port, gateway } => {
                format!("via {} dev {}", Ipv4Addr::from(gateway), name(port))
            }
            NextHop::Blackhole => "blackhole".into(),
            NextHop::Unreachable => "unreachable".into(),
            NextHop::Multipath { count, .. } => format!("{count} paths"),
        }
    }
}

fn rules(n: usize) -> String {
    if n == 1 {
        "1 rule".into()
    } else {
        format!("{n} rules")
    }
}
