//! The differential test (root): `routerctl explain` held against the Linux
//! kernel's netfilter, packet by packet.
//!
//! A router namespace (`r0` wan 198.18.0.1/24, `r1` lan 198.19.0.1/24,
//! kernel forwarding, `nf_conntrack_tcp_be_liberal=1`) gets the config's
//! `routerctl export nft` ruleset through the netlink loader (`lab::nft`),
//! each chain ending with a rule that counts what the policy decides. Two
//! peer namespaces (wan, lan) and the router itself send crafted packets
//! from raw sockets. For every packet the kernel's answer is read from
//! counters: which `ct state` a probe chain at priority -150 (after
//! conntrack, before filter) saw, which raw rule and which filter rule (or
//! policy) counted it, and the connection table (ctnetlink); explain runs
//! the same packets through one `Explainer` and must give the same
//! `ct_state`, `raw_rule`, `chain`, `rule`, `verdict`, and the same
//! entries (tuple and TCP state).
//!
//! The host stacks stay quiet: every injected packet carries a mark
//! (`SO_MARK`), the router drops unmarked packets it sends itself at
//! output priority -400 (before raw and conntrack: its RSTs, echo replies
//! and ICMP errors never touch the table, as routerd's own answers do not),
//! and the peers drop every packet they receive.
//!
//! Scenarios: fixed ones, one per netfilter rule explain relies on, and
//! seeded random ones (random rule sets, random TCP stories, UDP, ICMP
//! queries and errors). `NFT_DIFF_SEED` and `NFT_DIFF_RANDOM` change the
//! seed and the count.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use control::config::Config;
use control::explain::Explainer;
use control::nft::{Action, Ruleset};
use control::packet_spec::PacketSpec;
use dataplane::wire::checksum;
use lab::netns::run_in;
use lab::nft::{
    cmp, ct_bit, ct_state_is, meta, sum_by_tag, table_from_ruleset, tcp_state_name, ChainSpec,
    Expr, Nft, RuleSpec, TableSpec, NF_DROP, POLICY_TAG,
};
use lab::{Lab, LabError};
use serde_json::{json, Value};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The mark of injected packets.
const MARK: u32 = 0x5eed;

/// Documented deviations (README, Semantics) the scenarios leave out, each
/// by construction, with the reason. Nothing else is excluded.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "fragments",
        "the kernel reassembles before conntrack, routerd drops tracked fragments: no fragment is sent",
    ),
    (
        "sequence windows",
        "routerd tracks no sequence numbers: the kernel side gets consistent ones (each side's next \
         sequence number, acknowledging the other's) so that its window checks hold",
    ),
    (
        "checksums",
        "routerd checks only the IP header checksum: every packet sent has valid checksums",
    ),
    (
        "the dataplane's own answers",
        "routerd's reject RSTs, port unreachables and ICMP errors skip filter/output and \
         conntrack: the kernel's are dropped at output priority -400, before both",
    ),
    ("helpers", "no helper protocol (FTP, SIP) is sent"),
];

const BASE: &str = "
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24]
routes:
  - to: 203.0.113.0/24
    via: 198.19.0.2
  - to: default
    via: 198.18.0.2
";

// ------------------------------------------------------------------ rig

struct Rig {
    _lab: Lab,
    nft: Nft,
    wan: Socket,
    lan: Socket,
    host: Socket,
}

fn raw_socket() -> Result<Socket, LabError> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).map_err(|e| {
        LabError::Io {
            what: "raw IP socket".into(),
            err: e,
        }
    })?;
    s.set_mark(MARK).map_err(|e| LabError::Io {
        what: "SO_MARK".into(),
        err: e,
    })?;
    Ok(s)
}

fn quiet_peer_table() -> TableSpec {
    TableSpec {
        name: "quiet".into(),
        chains: vec![
            ChainSpec {
                name: "in".into(),
                hook: 0,
                priority: -400,
                accept: false,
            },
            ChainSpec {
                name: "out".into(),
                hook: 3,
                priority: -400,
                accept: true,
            },
        ],
        rules: vec![unmarked_drop("out")],
    }
}

fn unmarked_drop(chain: &str) -> RuleSpec {
    RuleSpec {
        chain: chain.into(),
        exprs: vec![
            Expr::Meta(meta::MARK),
            Expr::Cmp {
                op: cmp::NEQ,
                data: MARK.to_ne_bytes().to_vec(),
            },
            Expr::Verdict(NF_DROP),
        ],
        tag: "unmarked".into(),
    }
}

const STATES: [(&str, u32); 5] = [
    ("new", ct_bit::NEW),
    ("established", ct_bit::ESTABLISHED),
    ("related", ct_bit::RELATED),
    ("invalid", ct_bit::INVALID),
    ("untracked", ct_bit::UNTRACKED),
];

/// The router's probes: quiet host stack, and one counter per ct state
/// after conntrack in prerouting and output.
fn probe_table() -> TableSpec {
    let mut rules = vec![unmarked_drop("quiet")];
    for chain in ["ct_pre", "ct_out"] {
        for (name, bit) in STATES {
            let mut e = ct_state_is(bit);
            e.push(Expr::Counter);
            rules.push(RuleSpec {
                chain: chain.into(),
                exprs: e,
                tag: name.into(),
            });
        }
    }
    TableSpec {
        name: "probe".into(),
        chains: vec![
            ChainSpec {
                name: "quiet".into(),
                hook: 3,
                priority: -400,
                accept: true,
            },
            ChainSpec {
                name: "ct_pre".into(),
                hook: 0,
                priority: -150,
                accept: true,
            },
            ChainSpec {
                name: "ct_out".into(),
                hook: 3,
                priority: -150,
                accept: true,
            },
        ],
        rules,
    }
}

fn rig() -> Result<Rig, LabError> {
    let mut lab = Lab::new("nfd")?;
    let r = lab.add_ns("r")?;
    let w = lab.add_ns("w")?;
    let l = lab.add_ns("l")?;
    lab.veth(&r, "r0", &w, "w0")?;
    lab.veth(&r, "r1", &l, "l0")?;
    let macs = [
        (&r, "r0", "02:00:5e:10:00:01"),
        (&r, "r1", "02:00:5e:10:00:02"),
        (&w, "w0", "02:00:5e:20:00:01"),
        (&l, "l0", "02:00:5e:20:00:02"),
    ];
    for (ns, dev, mac) in macs {
        lab.exec(ns, &["ip", "link", "set", "dev", dev, "address", mac])?;
    }
    let cmds: &[(&String, &[&str])] = &[
        (&r, &["ip", "addr", "add", "198.18.0.1/24", "dev", "r0"]),
        (&r, &["ip", "addr", "add", "198.19.0.1/24", "dev", "r1"]),
        (
            &r,
            &["ip", "route", "add", "203.0.113.0/24", "via", "198.19.0.2"],
        ),
        (&r, &["ip", "route", "add", "default", "via", "198.18.0.2"]),
        (
            &r,
            &[
                "ip",
                "neigh",
                "add",
                "198.18.0.2",
                "lladdr",
                "02:00:5e:20:00:01",
                "dev",
                "r0",
            ],
        ),
        (
            &r,
            &[
                "ip",
                "neigh",
                "add",
                "198.19.0.2",
                "lladdr",
                "02:00:5e:20:00:02",
                "dev",
                "r1",
            ],
        ),
        (&w, &["ip", "addr", "add", "198.18.0.2/24", "dev", "w0"]),
        (&w, &["ip", "route", "add", "default", "via", "198.18.0.1"]),
        (
            &w,
            &[
                "ip",
                "neigh",
                "add",
                "198.18.0.1",
                "lladdr",
                "02:00:5e:10:00:01",
                "dev",
                "w0",
            ],
        ),
        (&l, &["ip", "addr", "add", "198.19.0.2/24", "dev", "l0"]),
        (&l, &["ip", "route", "add", "default", "via", "198.19.0.1"]),
        (
            &l,
            &[
                "ip",
                "neigh",
                "add",
                "198.19.0.1",
                "lladdr",
                "02:00:5e:10:00:02",
                "dev",
                "l0",
            ],
        ),
    ];
    for (ns, cmd) in cmds {
        lab.exec(ns, cmd)?;
    }
    for (k, v) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.r0.rp_filter", "0"),
        ("net.ipv4.conf.r1.rp_filter", "0"),
        ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
        ("net.netfilter.nf_conntrack_tcp_loose", "1"),
        ("net.netfilter.nf_conntrack_checksum", "1"),
    ] {
        lab.set_sysctl(&r, k, v)?;
    }
    for ns in [&w, &l] {
        run_in(ns, || Nft::open()?.replace(&quiet_peer_table()))?;
    }
    let mut nft = run_in(&r, Nft::open)?;
    nft.replace(&probe_table())?;
    Ok(Rig {
        nft,
        wan: run_in(&w, raw_socket)?,
        lan: run_in(&l, raw_socket)?,
        host: run_in(&r, raw_socket)?,
        _lab: lab,
    })
}

// ------------------------------------------------------------ sequences

/// Consistent TCP sequence numbers for the kernel side: each direction's
/// next sequence number, SYNs with fresh, growing ISNs, ACKs of what the
/// other side sent.
#[derive(Default)]
struct Seqs {
    next: HashMap<(u32, u16, u32, u16), u32>,
    isn: u32,
}

impl Seqs {
    fn bytes(&mut self, p: &PacketSpec) -> Vec<u8> {
        let mut b = p.ip_bytes();
        if p.proto != 6 {
            return b;
        }
        let (src, dst) = (u32::from(p.src), u32::from(p.dst));
        let me = (src, p.sport, dst, p.dport);
        let peer = (dst, p.dport, src, p.sport);
        let f = p.tcp_flags;
        let (fin, syn, rst, ack) = (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 0x10 != 0);
        let seq = if syn {
            self.isn = self.isn.wrapping_add(0x0010_0000);
            0x1000_0000u32.wrapping_add(self.isn)
        } else {
            match self.next.get(&me) {
                Some(s) => *s,
                None if rst => 0,
                None => {
                    self.isn = self.isn.wrapping_add(0x0010_0000);
                    0x1000_0000u32.wrapping_add(self.isn)
                }
            }
        };
        let ackno = if ack {
            self.next.get(&peer).copied().unwrap_or(0)
        } else {
            0
        };
        if !rst {
            let len = p.payload as u32 + u32::from(syn) + u32::from(fin);
            self.next.insert(me, seq.wrapping_add(len));
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let t = &mut b[ihl..];
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ackno.to_be_bytes());
        t[16..18].copy_from_slice(&[0, 0]);
        let s =
            checksum::fold(checksum::pseudo_header(src, dst, 6, t.len() as u16) + checksum::sum(t));
        t[16..18].copy_from_slice(&s.to_be_bytes());
        b
    }
}

// ------------------------------------------------------------ comparing

/// One field where the kernel and explain differ.
struct Diff {
    scenario: String,
    packet: usize,
    text: String,
    field: &'static str,
    explain: Value,
    kernel: Value,
}

struct Stats {
    scenarios: usize,
    packets: usize,
    diffs: Vec<Diff>,
    /// Scenarios stopped at a known deviation, by its name in [`EXCLUDED`].
    excluded: BTreeMap<&'static str, usize>,
}

fn verdict_name(a: Action) -> &'static str {
    match a {
        Action::Accept | Action::NoTrack => "accept",
        Action::Drop => "drop",
        Action::RejectTcp | Action::RejectIcmp => "reject",
    }
}

type Sums = BTreeMap<(String, String, String), u64>;

fn moved(before: &Sums, after: &Sums, table: &str, chains: &[&str]) -> Vec<(String, String)> {
    after
        .iter()
        .filter(|((t, c, _), _)| t == table && chains.contains(&c.as_str()))
        .filter(|(k, v)| **v > before.get(*k).copied().unwrap_or(0))
        .map(|((_, c, tag), _)| (c.clone(), tag.clone()))
        .collect()
}

fn rule_number(tag: &str) -> Value {
    tag.strip_prefix("rule ")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| json!(n))
        .unwrap_or(Value::Null)
}

/// The kernel's answer for one packet, as explain's JSON fields.
fn kernel_view(rs: &Ruleset, before: &Sums, after: &Sums) -> Value {
    let ct = moved(before, after, "probe", &["ct_pre", "ct_out"]);
    let ct_state = match ct.as_slice() {
        [(_, s)] => json!(s),
        [] => Value::Null,
        many => json!(format!("several: {many:?}")),
    };
    let raw = moved(before, after, "routerd", &["raw_prerouting", "raw_output"]);
    let raw_rule = match raw.as_slice() {
        [(_, tag)] => rule_number(tag),
        [] => Value::Null,
        many => json!(format!("several: {many:?}")),
    };
    let filter = moved(before, after, "routerd", &["input", "forward", "output"]);
    let (chain, rule, verdict) = match filter.as_slice() {
        [(c, tag)] => {
            let model = rs.chains.iter().find(|x| x.name == c.as_str());
            let verdict = if tag == POLICY_TAG {
                if model.is_some_and(|m| m.accept) {
                    "accept"
                } else {
                    "drop"
                }
            } else {
                let n = rule_number(tag).as_u64().unwrap_or(0) as usize;
                model
                    .and_then(|m| m.rules.iter().find(|r| r.index + 1 == n))
                    .map(|r| verdict_name(r.action))
                    .unwrap_or("?")
            };
            (json!(c), rule_number(tag), json!(verdict))
        }
        [] => (Value::Null, Value::Null, Value::Null),
        many => (
            json!(format!("several: {many:?}")),
            Value::Null,
            Value::Null,
        ),
    };
    json!({ "ct_state": ct_state, "raw_rule": raw_rule, "chain": chain, "rule": rule, "verdict": verdict })
}

fn flow_line(
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    tcp: Option<&str>,
) -> String {
    match proto {
        1 => format!("icmp {src} > {dst} id {sport}"),
        6 => format!("tcp {src}:{sport} > {dst}:{dport} {}", tcp.unwrap_or("?")),
        17 => format!("udp {src}:{sport} > {dst}:{dport}"),
        p => format!("proto {p} {src} > {dst}"),
    }
}

fn kernel_entries(nft: &mut Nft) -> Result<Vec<String>, LabError> {
    let mut v: Vec<String> = nft
        .conntrack()?
        .iter()
        .map(|e| {
            flow_line(
                e.proto,
                e.src,
                e.sport,
                e.dst,
                e.dport,
                e.tcp_state.map(tcp_state_name),
            )
        })
        .collect();
    v.sort();
    Ok(v)
}

fn explain_entries(ex: &Explainer) -> Vec<String> {
    let p = ex.pipeline();
    let mut v: Vec<String> = p
        .conntrack()
        .flows(p.now())
        .map(|f| {
            let k = f.key;
            flow_line(
                k.proto,
                Ipv4Addr::from(k.src),
                k.sport,
                Ipv4Addr::from(k.dst),
                k.dport,
                f.tcp_state.map(|s| s.name()),
            )
        })
        .collect();
    v.sort();
    v
}

struct Scenario {
    name: String,
    config: String,
    packets: Vec<String>,
    /// The entry of [`EXCLUDED`] this scenario must run into (a fixed
    /// reproduction of a deviation found: when it no longer happens, the
    /// exclusion goes).
    deviation: Option<&'static str>,
}

/// Runs one scenario; the known deviation it stopped at, if any.
fn run_scenario(
    rig: &mut Rig,
    sc: &Scenario,
    stats: &mut Stats,
) -> Result<Option<&'static str>, LabError> {
    let cfg = Config::from_str(&sc.config, Path::new(&sc.name))
        .unwrap_or_else(|e| panic!("scenario {}: config: {e}\n{}", sc.name, sc.config));
    let spec = cfg.tables_spec();
    let rs = control::nft::ruleset(&spec);
    rig.nft.replace(&table_from_ruleset("routerd", &rs, true))?;
    rig.nft.flush_conntrack()?;
    let mut ex = Explainer::new(spec);
    let mut seqs = Seqs::default();
    stats.scenarios += 1;
    let mut before = sum_by_tag(&rig.nft.counters()?);
    for (i, text) in sc.packets.iter().enumerate() {
        let p = PacketSpec::parse(text).unwrap_or_else(|e| panic!("scenario {}: {e}", sc.name));
        let e = ex
            .explain(&p)
            .unwrap_or_else(|e| panic!("scenario {}: {e}", sc.name))
            .json;
        let bytes = seqs.bytes(&p);
        let sock = match p.input.as_str() {
            "wan" => &rig.wan,
            "lan" => &rig.lan,
            _ => &rig.host,
        };
        match sock.send_to(&bytes, &SockAddr::from(SocketAddrV4::new(p.dst, 0))) {
            Ok(_) => {}
            // A packet of the router's own that output drops or rejects.
            Err(err) if p.input == "host" && err.kind() == std::io::ErrorKind::PermissionDenied => {
            }
            Err(err) => {
                return Err(LabError::Io {
                    what: format!("send {text}"),
                    err,
                })
            }
        }
        // Wait (bounded) until a filter chain has counted it.
        let t0 = Instant::now();
        let after = loop {
            let now = sum_by_tag(&rig.nft.counters()?);
            let filtered =
                !moved(&before, &now, "routerd", &["input", "forward", "output"]).is_empty();
            if filtered || t0.elapsed() > Duration::from_millis(500) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let k = kernel_view(&rs, &before, &after);
        before = after;
        stats.packets += 1;
        let mut diff = |field: &'static str, explain: Value, kernel: Value| {
            if explain != kernel {
                stats.diffs.push(Diff {
                    scenario: sc.name.clone(),
                    packet: i + 1,
                    text: text.clone(),
                    field,
                    explain,
                    kernel,
                });
            }
        };
        for f in ["ct_state", "raw_rule", "chain", "rule", "verdict"] {
            diff(f, e[f].clone(), k[f].clone());
        }
        let mut ke = kernel_entries(&mut rig.nft)?;
        let xe = explain_entries(&ex);
        if ke != xe {
            // Confirmation follows the filter on the same CPU: look again.
            std::thread::sleep(Duration::from_millis(20));
            ke = kernel_entries(&mut rig.nft)?;
        }
        diff("entries", json!(xe), json!(ke));
    }
    Ok(None)
}

// ------------------------------------------------------------ fixed ones

fn transit_config() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/transit-router.yaml"),
    )
    .expect("configs/transit-router.yaml")
}

/// Everything tracked, stateful chains, rejects.
const TRACKED: &str = "
filter:
  input:
    policy: drop
    rules:
      - match: { protocol: tcp, source_port: 8080 }
        action: reject
      - match: { state: [established, related] }
        action: accept
      - match: { protocol: icmp, icmp_type: echo-request }
        action: accept
      - match: { protocol: tcp, destination_port: 22, state: [new] }
        action: accept
      - match: { protocol: udp, destination_port: 53 }
        action: reject
  forward:
    policy: drop
    rules:
      - match: { state: [established, related] }
        action: accept
      - match: { in: lan, state: [new] }
        action: accept
      - match: { in: wan, protocol: tcp, destination_port: 80, state: [new] }
        action: accept
      - match: { in: wan, protocol: tcp, destination_port: 25 }
        action: reject
  output:
    policy: accept
    rules:
      - match: { state: [invalid] }
        action: drop
";

fn fixed() -> Vec<Scenario> {
    let transit = transit_config();
    let tracked = format!("{BASE}{TRACKED}");
    let ssh = |tail: &[&str]| -> Vec<String> {
        let mut v = vec![
            "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S".to_string(),
            "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA".to_string(),
            "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=A".to_string(),
        ];
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    };
    let c_fin = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=FA";
    let c_ack = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=A";
    let c_rst = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=R";
    let c_syn = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S";
    let s_fin = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=FA";
    let s_ack = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=A";
    let s_rst = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=R";
    let s_syn = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=S";
    let s_synack = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA";
    let data = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=PA len=100";
    let sc = |name: &str, config: &str, packets: Vec<String>| Scenario {
        name: name.into(),
        config: config.into(),
        packets,
        deviation: None,
    };
    let v = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        sc("handshake", &transit, ssh(&[data, s_ack])),
        sc(
            "handshake, closed port dropped by policy",
            &transit,
            v(&[
                "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:23 flags=S",
                "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:23 flags=S",
                "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53",
            ]),
        ),
        sc(
            "FIN/ACK close, client first",
            &transit,
            ssh(&[data, c_fin, s_ack, s_fin, c_ack, c_ack]),
        ),
        sc(
            "FIN/ACK close, server first",
            &transit,
            ssh(&[s_fin, c_ack, c_fin, s_ack, s_ack]),
        ),
        sc(
            "RST before any reply (server answers the SYN)",
            &tracked,
            v(&[
                "in=lan tcp 198.19.0.2:40600 > 198.18.0.2:80 flags=S",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40600 flags=RA",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40600 flags=A",
                "in=wan icmp 198.18.0.2 > 198.19.0.2 type=destination-unreachable code=port-unreachable inner tcp 198.19.0.2:40600 > 198.18.0.2:80",
            ]),
        ),
        sc(
            "RST before any reply (the client gives up)",
            &tracked,
            v(&[
                "in=lan tcp 198.19.0.2:40601 > 198.18.0.2:80 flags=S",
                "in=lan tcp 198.19.0.2:40601 > 198.18.0.2:80 flags=R",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40601 flags=SA",
            ]),
        ),
        sc(
            "reopen after a RST from the same side",
            &transit,
            ssh(&[c_rst, c_syn, s_synack, c_ack]),
        ),
        sc(
            "SYN after a RST from the other side is ignored, SYN+ACK resynchronises",
            &transit,
            ssh(&[s_rst, c_syn, s_synack, c_ack]),
        ),
        sc(
            "server SYN on TIME_WAIT is a new flow from the server",
            &transit,
            ssh(&[c_fin, s_ack, s_fin, c_ack, s_syn]),
        ),
        sc(
            "client SYN on TIME_WAIT reopens",
            &transit,
            ssh(&[c_fin, s_ack, s_fin, c_ack, c_syn, s_synack, c_ack]),
        ),
        sc(
            "transit TCP of the issue: close both ways, then the server's SYN",
            &tracked,
            v(&[
                "in=lan tcp 198.19.0.2:40700 > 198.18.0.2:80 flags=S",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40700 flags=SA",
                "in=lan tcp 198.19.0.2:40700 > 198.18.0.2:80 flags=A",
                "in=lan tcp 198.19.0.2:40700 > 198.18.0.2:80 flags=FA",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40700 flags=A",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40700 flags=FA",
                "in=lan tcp 198.19.0.2:40700 > 198.18.0.2:80 flags=A",
                "in=wan tcp 198.18.0.2:80 > 198.19.0.2:40700 flags=S",
            ]),
        ),
        sc(
            "ICMP echo both ways with the same id",
            &transit,
            v(&[
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=5",
                "in=host icmp 198.18.0.1 > 198.18.0.2 type=echo-request id=5",
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-reply id=5",
                "in=host icmp 198.18.0.1 > 198.18.0.2 type=echo-reply id=5",
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=5",
                // An error quoting the router's request goes to the router:
                // RELATED; one quoting the peer's request, sent to the
                // router, relates to nothing.
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner icmp 198.18.0.1 > 198.18.0.2 type=echo-request id=5",
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=5",
            ]),
        ),
        sc(
            "ICMP errors to the right and to the wrong outer destination",
            &transit,
            v(&[
                "in=host udp 198.18.0.1:40500 > 198.18.0.2:53",
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=port-unreachable inner udp 198.18.0.1:40500 > 198.18.0.2:53",
                "in=wan icmp 198.18.0.2 > 198.19.0.1 type=destination-unreachable code=port-unreachable inner udp 198.18.0.1:40500 > 198.18.0.2:53",
                "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner tcp 198.19.0.2:40500 > 198.18.5.5:80",
            ]),
        ),
        sc(
            "ICMP errors about a tracked transit flow",
            &tracked,
            v(&[
                "in=lan udp 198.19.0.2:40800 > 198.18.5.5:53",
                "in=wan icmp 198.18.0.2 > 198.19.0.2 type=time-exceeded code=0 inner udp 198.19.0.2:40800 > 198.18.5.5:53",
                "in=wan icmp 198.18.0.2 > 203.0.113.9 type=time-exceeded code=0 inner udp 198.19.0.2:40800 > 198.18.5.5:53",
                "in=wan udp 198.18.5.5:53 > 198.19.0.2:40800",
            ]),
        ),
        sc(
            "reject's RST moves the flow to CLOSE",
            &tracked,
            v(&[
                "in=host tcp 198.18.0.1:40900 > 198.18.0.2:8080 flags=S",
                "in=wan tcp 198.18.0.2:8080 > 198.18.0.1:40900 flags=SA",
                "in=host tcp 198.18.0.1:40900 > 198.18.0.2:8080 flags=A",
                "in=host tcp 198.18.0.1:40900 > 198.18.0.2:8080 flags=S",
            ]),
        ),
        sc(
            "reject's RST on an established forwarded flow",
            &tracked,
            v(&[
                "in=wan tcp 198.18.0.2:41000 > 198.19.0.2:80 flags=S",
                "in=lan tcp 198.19.0.2:80 > 198.18.0.2:41000 flags=SA",
                "in=wan tcp 198.18.0.2:41000 > 198.19.0.2:80 flags=A",
                "in=wan tcp 198.18.0.2:41001 > 198.19.0.2:25 flags=S",
                "in=wan udp 198.18.0.2:41002 > 198.18.0.1:53",
                "in=wan tcp 198.18.0.2:41000 > 198.19.0.2:80 flags=PA len=10",
            ]),
        ),
        sc(
            "reject in filter/output answers the router's own stack",
            &format!("{BASE}filter:\n  output:\n    rules:\n      - action: reject\n"),
            v(&[
                "in=lan tcp 198.19.0.2:22 > 198.19.0.1:30161 flags=A",
                "in=lan tcp 198.19.0.2:22 > 198.19.0.1:30161 flags=FA",
                "in=host tcp 198.19.0.1:30161 > 198.19.0.2:22 flags=A",
            ]),
        ),
        sc(
            "reject of an INVALID TCP packet closes no flow",
            &format!("{BASE}filter:\n  input:\n    rules:\n      - match: {{ state: [invalid] }}\n        action: reject\n"),
            v(&[
                "in=host tcp 198.18.0.1:8080 > 198.18.0.2:30026 flags=A",
                "in=host tcp 198.18.0.1:8080 > 198.18.0.2:30026 flags=FA",
                "in=wan tcp 198.18.0.2:30026 > 198.18.0.1:8080 flags=A",
                "in=wan tcp 198.18.0.2:30026 > 198.18.0.1:8080 flags=S",
            ]),
        ),
    ]
}

// ------------------------------------------------------------ random ones

/// splitmix64: a seeded generator with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const PORTS: [u16; 6] = [22, 53, 80, 443, 5353, 8080];
const PREFIXES: [&str; 5] = [
    "198.18.0.0/24",
    "198.19.0.0/24",
    "203.0.113.0/24",
    "198.18.0.0/15",
    "198.18.5.5/32",
];
const STATE_NAMES: [&str; 5] = ["new", "established", "related", "invalid", "untracked"];

fn states(rng: &mut Rng) -> String {
    let mut v: Vec<&str> = STATE_NAMES
        .iter()
        .copied()
        .filter(|_| rng.chance(40))
        .collect();
    if v.is_empty() {
        v.push(*rng.pick(&STATE_NAMES));
    }
    format!("[{}]", v.join(", "))
}

fn port_match(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.pick(&PORTS).to_string(),
        1 => format!("[{}, {}]", rng.pick(&PORTS), rng.pick(&PORTS)),
        _ => "\"1-1023\"".to_string(),
    }
}

fn filter_rule(rng: &mut Rng, chain: &str) -> String {
    let mut m: Vec<String> = Vec::new();
    match rng.below(8) {
        0 | 1 => m.push(format!("state: {}", states(rng))),
        2 => {
            let proto = *rng.pick(&["tcp", "udp"]);
            m.push(format!("protocol: {proto}"));
            let key = if rng.chance(70) {
                "destination_port"
            } else {
                "source_port"
            };
            m.push(format!("{key}: {}", port_match(rng)));
            if rng.chance(40) {
                m.push(format!("state: {}", states(rng)));
            }
        }
        3 => {
            m.push("protocol: icmp".into());
            let t = *rng.pick(&[
                "echo-request",
                "echo-reply",
                "destination-unreachable",
                "time-exceeded",
            ]);
            m.push(format!("icmp_type: {t}"));
            if rng.chance(40) {
                m.push(format!("state: {}", states(rng)));
            }
        }
        4 => {
            let (key, ifs) = match chain {
                "input" => ("in", &["wan", "lan", "[wan, lan]"][..]),
                "output" => ("out", &["wan", "lan"][..]),
                _ => (*rng.pick(&["in", "out"]), &["wan", "lan"][..]),
            };
            m.push(format!("{key}: {}", rng.pick(ifs)));
            if rng.chance(50) {
                m.push(format!("state: {}", states(rng)));
            }
        }
        5 => {
            let key = *rng.pick(&["source", "destination"]);
            let v = if rng.chance(25) {
                "local".to_string()
            } else {
                rng.pick(&PREFIXES).to_string()
            };
            m.push(format!("{key}: {v}"));
        }
        6 => m.push(format!("protocol: {}", rng.pick(&["tcp", "udp", "icmp"]))),
        _ => {}
    }
    let action = match rng.below(10) {
        0..=4 => "accept",
        5..=7 => "drop",
        _ => "reject",
    };
    if m.is_empty() {
        format!("      - action: {action}\n")
    } else {
        format!(
            "      - match: {{ {} }}\n        action: {action}\n",
            m.join(", ")
        )
    }
}

fn raw_rule(rng: &mut Rng, output: bool) -> String {
    let m = if output {
        match rng.below(4) {
            0 => "source: local, protocol: tcp, source_port: 80".to_string(),
            1 => "protocol: icmp".to_string(),
            2 => format!("destination: {}", rng.pick(&PREFIXES)),
            _ => format!("protocol: udp, destination_port: {}", rng.pick(&PORTS)),
        }
    } else {
        match rng.below(6) {
            0 | 1 => "destination: local".to_string(),
            2 => format!("in: {}", rng.pick(&["wan", "lan"])),
            3 => "protocol: udp".to_string(),
            4 => format!("protocol: tcp, destination_port: {}", rng.pick(&PORTS)),
            _ => format!("source: {}", rng.pick(&PREFIXES)),
        }
    };
    let action = if rng.chance(60) { "notrack" } else { "accept" };
    format!("    - match: {{ {m} }}\n      action: {action}\n")
}

fn random_config(rng: &mut Rng) -> String {
    let mut s = BASE.to_string();
    let list = |rules: Vec<String>, indent: &str| {
        if rules.is_empty() {
            format!("{indent}[]\n")
        } else {
            rules.concat()
        }
    };
    let mut pre: Vec<String> = (0..rng.below(3)).map(|_| raw_rule(rng, false)).collect();
    if rng.chance(10) {
        pre.push("    - action: notrack\n".to_string());
    }
    let out: Vec<String> = (0..rng.below(2)).map(|_| raw_rule(rng, true)).collect();
    let _ = write!(
        s,
        "raw:\n  prerouting:\n{}  output:\n{}",
        list(pre, "    "),
        list(out, "    ")
    );
    s.push_str("filter:\n");
    for chain in ["input", "forward", "output"] {
        let policy = if rng.chance(50) { "drop" } else { "accept" };
        let _ = writeln!(s, "  {chain}:\n    policy: {policy}\n    rules:");
        let rules: Vec<String> = (0..rng.below(5)).map(|_| filter_rule(rng, chain)).collect();
        s.push_str(&list(rules, "      "));
    }
    s
}

#[derive(Clone, Copy)]
struct Host {
    addr: &'static str,
    side: &'static str,
}

const WAN_HOSTS: [Host; 2] = [
    Host {
        addr: "198.18.0.2",
        side: "wan",
    },
    Host {
        addr: "198.18.5.5",
        side: "wan",
    },
];
const LAN_HOSTS: [Host; 2] = [
    Host {
        addr: "198.19.0.2",
        side: "lan",
    },
    Host {
        addr: "203.0.113.9",
        side: "lan",
    },
];

/// Where an address of the scenarios lives (`host`: the router's).
fn side_of(addr: &str) -> &'static str {
    WAN_HOSTS
        .iter()
        .chain(LAN_HOSTS.iter())
        .find(|h| h.addr == addr)
        .map(|h| h.side)
        .unwrap_or("host")
}

/// The router's address facing `peer`.
fn router_for(peer: Host) -> Host {
    let addr = if peer.side == "wan" {
        "198.18.0.1"
    } else {
        "198.19.0.1"
    };
    Host { addr, side: "host" }
}

/// A flow between a client and a server, and what its packets look like.
struct Flow {
    c: Host,
    s: Host,
    proto: &'static str,
    cport: u16,
    sport: u16,
}

impl Flow {
    fn packet(&self, reply: bool, opts: &str) -> String {
        let (a, ap, b, bp) = if reply {
            (self.s, self.sport, self.c, self.cport)
        } else {
            (self.c, self.cport, self.s, self.sport)
        };
        match self.proto {
            "icmp" => format!("in={} icmp {} > {} {opts}", a.side, a.addr, b.addr),
            p => format!("in={} {p} {}:{ap} > {}:{bp} {opts}", a.side, a.addr, b.addr),
        }
        .trim_end()
        .to_string()
    }

    /// The packet an error quotes (no `in=`).
    fn quoted(&self, reply: bool) -> String {
        let p = self.packet(reply, "");
        let q = p.split_once(' ').map(|x| x.1).unwrap_or(&p).to_string();
        if self.proto == "icmp" {
            let ty = if reply { "echo-reply" } else { "echo-request" };
            format!("{q} type={ty} id={}", self.cport)
        } else {
            q
        }
    }
}

fn random_flow(rng: &mut Rng, n: usize) -> Flow {
    let wan = *rng.pick(&WAN_HOSTS);
    let lan = *rng.pick(&LAN_HOSTS);
    let (c, s) = match rng.below(6) {
        0 => (wan, lan),
        1 => (lan, wan),
        2 => (wan, router_for(wan)),
        3 => (lan, router_for(lan)),
        4 => (router_for(wan), wan),
        _ => (router_for(lan), lan),
    };
    let proto = *rng.pick(&["tcp", "tcp", "udp", "icmp"]);
    Flow {
        c,
        s,
        proto,
        cport: if proto == "icmp" {
            1 + (n as u16) * 7 + rng.below(5) as u16
        } else {
            30000 + (n as u16) * 100 + rng.below(100) as u16
        },
        sport: *rng.pick(&PORTS),
    }
}

/// A plausible TCP story, as (reply?, flags, payload).
fn tcp_story(rng: &mut Rng) -> Vec<(bool, &'static str)> {
    let hs = [(false, "S"), (true, "SA"), (false, "A")];
    let data = [
        (false, "PA len=20"),
        (true, "A"),
        (true, "PA len=30"),
        (false, "A"),
    ];
    let c_close = [(false, "FA"), (true, "A"), (true, "FA"), (false, "A")];
    let s_close = [(true, "FA"), (false, "A"), (false, "FA"), (true, "A")];
    let mut v: Vec<(bool, &'static str)> = Vec::new();
    match rng.below(11) {
        0 => {
            v.extend(hs);
            v.extend(data);
            v.extend(c_close);
        }
        1 => {
            v.extend(hs);
            v.extend(s_close);
        }
        2 => {
            v.extend(hs);
            v.extend(&data[..2]);
            v.push((rng.chance(50), "R"));
        }
        3 => v.extend([(false, "S"), (true, "RA")]),
        4 => v.extend([(false, "S"), (false, "R"), (true, "SA")]),
        5 => {
            v.extend(hs);
            v.extend([(false, "R"), (false, "S"), (true, "SA"), (false, "A")]);
        }
        6 => {
            v.extend(hs);
            v.extend([(true, "R"), (false, "S"), (true, "SA"), (false, "A")]);
        }
        7 => {
            v.extend(hs);
            v.extend(c_close);
            v.push((true, "S"));
            v.push((false, "SA"));
        }
        8 => {
            v.extend(hs);
            v.extend(c_close);
            v.extend(hs);
        }
        9 => v.extend([(false, "A"), (true, "A"), (false, "PA len=5")]),
        _ => v.extend([(false, "S"), (false, "S"), (true, "SA"), (false, "A")]),
    }
    // Cut the story short at random.
    if rng.chance(30) {
        let keep = 1 + rng.below(v.len());
        v.truncate(keep);
    }
    v
}

fn error_about(rng: &mut Rng, f: &Flow) -> String {
    // About a packet of either direction, sent back to its source (right)
    // or elsewhere (wrong).
    let reply = rng.chance(40);
    let (src, to) = if reply { (f.s, f.c) } else { (f.c, f.s) };
    // The error comes from the side the quoted packet was going to.
    let from = to;
    let dst = if rng.chance(65) {
        src.addr
    } else {
        *rng.pick(&[
            "198.18.0.1",
            "198.19.0.1",
            "198.18.0.2",
            "198.19.0.2",
            "203.0.113.9",
        ])
    };
    // Sent from one side to a host on the same side, it would never reach
    // the router.
    if side_of(dst) == from.side {
        return String::new();
    }
    let (ty, code) = *rng.pick(&[
        ("destination-unreachable", "port-unreachable"),
        ("destination-unreachable", "host-unreachable"),
        ("destination-unreachable", "frag-needed"),
        ("time-exceeded", "0"),
    ]);
    format!(
        "in={} icmp {} > {dst} type={ty} code={code} inner {}",
        from.side,
        from.addr,
        f.quoted(reply)
    )
}

fn random_scenario(rng: &mut Rng, i: usize) -> Scenario {
    let config = random_config(rng);
    let nflows = 1 + rng.below(3);
    let flows: Vec<Flow> = (0..nflows).map(|n| random_flow(rng, n)).collect();
    let mut stories: Vec<Vec<String>> = Vec::new();
    for f in &flows {
        let mut v = Vec::new();
        match f.proto {
            "tcp" => {
                for (reply, flags) in tcp_story(rng) {
                    v.push(f.packet(reply, &format!("flags={flags}")));
                }
            }
            "udp" => {
                for _ in 0..1 + rng.below(4) {
                    v.push(f.packet(rng.chance(40), ""));
                }
            }
            _ => {
                let id = f.cport;
                for _ in 0..1 + rng.below(3) {
                    v.push(f.packet(false, &format!("type=echo-request id={id}")));
                    if rng.chance(70) {
                        v.push(f.packet(true, &format!("type=echo-reply id={id}")));
                    }
                }
                if rng.chance(40) {
                    // The same id the other way: a second flow.
                    v.push(f.packet(true, &format!("type=echo-request id={id}")));
                    if rng.chance(70) {
                        v.push(f.packet(false, &format!("type=echo-reply id={id}")));
                    }
                }
            }
        }
        // ICMP errors somewhere in the story.
        for _ in 0..rng.below(3) {
            let e = error_about(rng, f);
            if !e.is_empty() {
                let at = rng.below(v.len() + 1);
                v.insert(at, e);
            }
        }
        stories.push(v);
    }
    // Interleave the stories, each in order.
    let mut packets = Vec::new();
    let mut pos = vec![0usize; stories.len()];
    while packets.len() < stories.iter().map(Vec::len).sum::<usize>() {
        let k = rng.below(stories.len());
        if pos[k] < stories[k].len() {
            packets.push(stories[k][pos[k]].clone());
            pos[k] += 1;
        }
    }
    Scenario {
        name: format!("random {i}"),
        config,
        packets,
        deviation: None,
    }
}

// ------------------------------------------------------------ the test

#[test]
fn explain_answers_as_the_kernel_packet_by_packet() {
    lab::require_root();
    let seed: u64 = std::env::var("NFT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(18);
    let count: usize = std::env::var("NFT_DIFF_RANDOM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let mut rig = rig().expect("the namespace router");
    let mut stats = Stats {
        scenarios: 0,
        packets: 0,
        diffs: Vec::new(),
        excluded: BTreeMap::new(),
    };
    let mut scenarios = fixed();
    let fixed_count = scenarios.len();
    let mut rng = Rng(seed);
    scenarios.extend((0..count).map(|i| random_scenario(&mut rng, i)));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut unexpected: Vec<String> = Vec::new();
    for sc in &scenarios {
        assert!(
            Instant::now() < deadline,
            "the differential run took too long"
        );
        let stopped = run_scenario(&mut rig, sc, &mut stats)
            .unwrap_or_else(|e| panic!("scenario {}: {e}", sc.name));
        if let Some(want) = sc.deviation {
            if stopped != Some(want) {
                unexpected.push(format!(
                    "{}: the deviation `{want}` no longer shows (got {stopped:?}): \
                     remove it from EXCLUDED and the README",
                    sc.name
                ));
            }
        }
    }
    let mut report = format!(
        "nft_diff: {} scenarios ({fixed_count} fixed, {count} random, seed {seed}), {} packets, {} differences\n",
        stats.scenarios,
        stats.packets,
        stats.diffs.len()
    );
    report.push_str("excluded (README, Semantics):\n");
    for (name, why) in EXCLUDED {
        let _ = writeln!(report, "  {name}: {why}");
        if let Some(n) = stats.excluded.get(name) {
            let _ = writeln!(report, "    -> {n} scenarios stopped there");
        }
    }
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    for d in &stats.diffs {
        let n = shown.entry(d.scenario.clone()).or_default();
        *n += 1;
        if *n > 3 {
            continue;
        }
        let sc = scenarios.iter().find(|s| s.name == d.scenario).unwrap();
        let _ = writeln!(
            report,
            "\n{} packet {}: {}\n  {}: explain {} kernel {}\n  packets:\n{}",
            d.scenario,
            d.packet,
            d.text,
            d.field,
            d.explain,
            d.kernel,
            sc.packets[..d.packet]
                .iter()
                .map(|p| format!("    {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if *n == 1 && d.scenario.starts_with("random") {
            let _ = writeln!(
                report,
                "  config:{}",
                sc.config.replace(BASE, "\n  (base)\n")
            );
        }
    }
    for u in &unexpected {
        let _ = writeln!(report, "{u}");
    }
    eprintln!("{report}");
    assert!(stats.diffs.is_empty() && unexpected.is_empty(), "{report}");
}
