//! nf_tables and conntrack over netlink, written by hand: loads the ruleset
//! of `routerctl export nft` ([`control::nft::Ruleset`]) into the kernel of
//! the calling thread's network namespace, reads each rule's counter back,
//! and dumps or flushes the connection table.
//!
//! Why by hand: the tests must run on a fresh machine with only Rust and
//! iproute2, so the `nft` program cannot be used; `rustables` is GPL-3.0
//! and needs bindgen; and the export needs only a handful of messages and
//! expressions. The wire format follows the kernel's uapi headers
//! (`include/uapi/linux/netfilter/nf_tables.h`, `nfnetlink.h`,
//! `nfnetlink_conntrack.h`):
//!
//! - a message is an `nlmsghdr` (host order) with type `SUBSYS << 8 | MSG`,
//!   a 4-byte `nfgenmsg` (family, version 0, resource id in network order)
//!   and attributes (type, length, value padded to 4 bytes); every integer
//!   attribute of nf_tables is in network order, nests carry `NLA_F_NESTED`;
//! - changes go in one batch (`NFNL_MSG_BATCH_BEGIN` .. `END`, resource id
//!   `NFNL_SUBSYS_NFTABLES`) that the kernel applies atomically, each
//!   message acknowledged;
//! - a rule is a list of expressions over registers: `meta`, `payload`,
//!   `bitwise`, `cmp`, `fib`, `ct`, `counter`, `notrack`, `reject` and an
//!   `immediate` verdict, as nft itself compiles the same rules.
//!
//! One deviation from what `nft -f` loads: nft puts a rule's sets
//! (`iifname { "r0", "r1" }`, `th dport { 23, 2323 }`) in anonymous sets;
//! here a rule with sets becomes one kernel rule per combination of their
//! elements, all tagged with the same config rule, in order. First match
//! wins in both, so a packet takes the same verdict and exactly one of the
//! expanded rules counts it: [`Counter`]s are summed by tag.
//!
//! Sockets are made through `socket2` (no `unsafe`): a netlink socket that
//! is never bound is bound by the kernel at its first send and talks to the
//! kernel (port id 0).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::time::Duration;

use control::nft::{Action, Hook, NftChain, Ruleset, Term};
use dataplane::conntrack::CtState;
use socket2::{Domain, Protocol, Socket, Type};

use crate::LabError;

const AF_NETLINK: i32 = 16;
const NETLINK_NETFILTER: i32 = 12;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DESTROYTABLE: u16 = 26;

const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// `enum nft_table_attributes`.
mod table_attr {
    pub const NAME: u16 = 1;
    pub const FLAGS: u16 = 2;
}

/// `enum nft_chain_attributes` and `nft_hook_attributes`.
mod chain_attr {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
}

/// `enum nft_rule_attributes`, `nft_list_attributes`, `nft_expr_attributes`.
mod rule_attr {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const HANDLE: u16 = 3;
    pub const EXPRESSIONS: u16 = 4;
    pub const USERDATA: u16 = 7;
    pub const LIST_ELEM: u16 = 1;
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;
}

/// `NF_INET_*` hook numbers.
mod hooknum {
    pub const PRE_ROUTING: u32 = 0;
    pub const LOCAL_IN: u32 = 1;
    pub const FORWARD: u32 = 2;
    pub const LOCAL_OUT: u32 = 3;
}

/// Netfilter verdicts.
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;

/// `enum nft_meta_keys` used here.
pub mod meta {
    pub const MARK: u32 = 3;
    pub const IIFNAME: u32 = 6;
    pub const OIFNAME: u32 = 7;
    pub const NFPROTO: u32 = 15;
    pub const L4PROTO: u32 = 16;
}

/// `enum nft_payload_bases`.
pub mod base {
    pub const NETWORK: u32 = 1;
    pub const TRANSPORT: u32 = 2;
}

/// `enum nft_cmp_ops`.
pub mod cmp {
    pub const EQ: u32 = 0;
    pub const NEQ: u32 = 1;
    pub const LTE: u32 = 3;
    pub const GTE: u32 = 5;
}

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_SADDR: u32 = 1;
const NFTA_FIB_F_DADDR: u32 = 2;
const NFT_CT_STATE: u32 = 0;
const NFT_REJECT_TCP_RST: u32 = 1;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;
/// `RTN_LOCAL`: what `fib ... type local` compares with.
const RTN_LOCAL: u32 = 2;

/// The kernel's `ct state` bits (`NF_CT_STATE_BIT` of `ip_conntrack_info`).
pub mod ct_bit {
    pub const INVALID: u32 = 1;
    pub const ESTABLISHED: u32 = 2;
    pub const RELATED: u32 = 4;
    pub const NEW: u32 = 8;
    pub const UNTRACKED: u32 = 64;
}

/// The kernel's `ct state` bit of a routerd state.
pub fn ct_state_bit(s: CtState) -> u32 {
    match s {
        CtState::New => ct_bit::NEW,
        CtState::Established => ct_bit::ESTABLISHED,
        CtState::Related => ct_bit::RELATED,
        CtState::Invalid => ct_bit::INVALID,
        CtState::Untracked => ct_bit::UNTRACKED,
    }
}

/// The kernel's mask for a routerd state mask ([`CtState::bit`]s).
pub fn ct_state_mask(mask: u8) -> u32 {
    [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ]
    .into_iter()
    .filter(|s| mask & s.bit() != 0)
    .map(ct_state_bit)
    .fold(0, |a, b| a | b)
}

/// One expression. Loads go to register 1, `Bitwise` and `Cmp` work on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta KEY` into the register.
    Meta(u32),
    /// `LEN` bytes at `OFFSET` of a header into the register.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// register &= mask.
    Bitwise(Vec<u8>),
    /// Compare the register with `data`; no match ends the rule.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// `fib saddr|daddr type` into the register.
    FibType {
        dst: bool,
    },
    /// `ct state` into the register.
    CtState,
    Counter,
    NoTrack,
    /// `reject with tcp reset` (`true`) or `icmpx type port-unreachable`.
    Reject {
        tcp: bool,
    },
    /// A verdict (`NF_ACCEPT`, `NF_DROP`).
    Verdict(u32),
}

/// A base chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: String,
    /// `NF_INET_*`.
    pub hook: u32,
    pub priority: i32,
    pub accept: bool,
}

/// A rule: its chain, expressions and tag (user data, read back with the
/// counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub chain: String,
    pub exprs: Vec<Expr>,
    pub tag: String,
}

/// A `table inet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub chains: Vec<ChainSpec>,
    pub rules: Vec<RuleSpec>,
}

/// Tag of the counting rule appended to a chain by [`table_from_ruleset`]
/// with `policy_probes`: it counts the packets the policy decides.
pub const POLICY_TAG: &str = "policy";

fn hook_num(h: Hook) -> u32 {
    match h {
        Hook::Prerouting => hooknum::PRE_ROUTING,
        Hook::Input => hooknum::LOCAL_IN,
        Hook::Forward => hooknum::FORWARD,
        Hook::Output => hooknum::LOCAL_OUT,
    }
}

fn cmp_eq(data: &[u8]) -> Expr {
    Expr::Cmp {
        op: cmp::EQ,
        data: data.to_vec(),
    }
}

fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

/// The alternatives of one term: the rule matches when, for every term,
/// one of its alternatives matches.
fn term_alternatives(t: &Term) -> Vec<Vec<Expr>> {
    match t {
        Term::Iif(devs) | Term::Oif(devs) => {
            let key = if matches!(t, Term::Iif(_)) {
                meta::IIFNAME
            } else {
                meta::OIFNAME
            };
            devs.iter()
                .map(|d| vec![Expr::Meta(key), cmp_eq(&ifname(d))])
                .collect()
        }
        Term::Local { dst } => vec![vec![
            Expr::FibType { dst: *dst },
            cmp_eq(&RTN_LOCAL.to_ne_bytes()),
        ]],
        Term::Prefixes { dst, prefixes } => prefixes
            .iter()
            .map(|p| {
                // `ip saddr` in an inet table: IPv4 only.
                let mut e = vec![Expr::Meta(meta::NFPROTO), cmp_eq(&[NFPROTO_IPV4])];
                if p.len() > 0 {
                    e.push(Expr::Payload {
                        base: base::NETWORK,
                        offset: if *dst { 16 } else { 12 },
                        len: 4,
                    });
                    if p.len() < 32 {
                        e.push(Expr::Bitwise(p.mask().to_be_bytes().to_vec()));
                    }
                    e.push(cmp_eq(&p.addr().to_be_bytes()));
                }
                e
            })
            .collect(),
        Term::Prefixes6 { dst, prefixes } => prefixes
            .iter()
            .map(|p| {
                // `ip6 saddr` in an inet table: IPv6 only.
                let mut e = vec![Expr::Meta(meta::NFPROTO), cmp_eq(&[NFPROTO_IPV6])];
                if p.len() > 0 {
                    e.push(Expr::Payload {
                        base: base::NETWORK,
                        offset: if *dst { 24 } else { 8 },
                        len: 16,
                    });
                    if p.len() < 128 {
                        e.push(Expr::Bitwise(p.mask().to_be_bytes().to_vec()));
                    }
                    e.push(cmp_eq(&p.addr().to_be_bytes()));
                }
                e
            })
            .collect(),
        Term::Family(f) => vec![vec![
            Expr::Meta(meta::NFPROTO),
            cmp_eq(&[match f {
                dataplane::rules::Family::Ipv4 => NFPROTO_IPV4,
                dataplane::rules::Family::Ipv6 => NFPROTO_IPV6,
            }]),
        ]],
        Term::Proto(p) => vec![vec![Expr::Meta(meta::L4PROTO), cmp_eq(&[*p])]],
        Term::TcpOrUdp => [6u8, 17]
            .iter()
            .map(|p| vec![Expr::Meta(meta::L4PROTO), cmp_eq(&[*p])])
            .collect(),
        Term::Ports { dst, ranges } => ranges
            .iter()
            .map(|&(lo, hi)| {
                let mut e = vec![Expr::Payload {
                    base: base::TRANSPORT,
                    offset: if *dst { 2 } else { 0 },
                    len: 2,
                }];
                if lo == hi {
                    e.push(cmp_eq(&lo.to_be_bytes()));
                } else {
                    e.push(Expr::Cmp {
                        op: cmp::GTE,
                        data: lo.to_be_bytes().to_vec(),
                    });
                    e.push(Expr::Cmp {
                        op: cmp::LTE,
                        data: hi.to_be_bytes().to_vec(),
                    });
                }
                e
            })
            .collect(),
        Term::State(mask) => vec![ct_state_is(ct_state_mask(*mask))],
        Term::IcmpType(ty) | Term::Icmpv6Type(ty) => vec![vec![
            Expr::Payload {
                base: base::TRANSPORT,
                offset: 0,
                len: 1,
            },
            cmp_eq(&[*ty]),
        ]],
        Term::IcmpCode(c) | Term::Icmpv6Code(c) => vec![vec![
            Expr::Payload {
                base: base::TRANSPORT,
                offset: 1,
                len: 1,
            },
            cmp_eq(&[*c]),
        ]],
    }
}

/// `ct state & MASK != 0`, as nft compiles `ct state { ... }`.
pub fn ct_state_is(mask: u32) -> Vec<Expr> {
    vec![
        Expr::CtState,
        Expr::Bitwise(mask.to_ne_bytes().to_vec()),
        Expr::Cmp {
            op: cmp::NEQ,
            data: 0u32.to_ne_bytes().to_vec(),
        },
    ]
}

/// Every combination of the terms' alternatives, in order.
fn expand(terms: &[Term]) -> Vec<Vec<Expr>> {
    let mut out: Vec<Vec<Expr>> = vec![Vec::new()];
    for t in terms {
        let alts = term_alternatives(t);
        let mut next = Vec::with_capacity(out.len() * alts.len());
        for prefix in &out {
            for a in &alts {
                let mut v = prefix.clone();
                v.extend(a.iter().cloned());
                next.push(v);
            }
        }
        out = next;
    }
    out
}

fn action_exprs(a: Action) -> Vec<Expr> {
    match a {
        Action::Accept => vec![Expr::Verdict(NF_ACCEPT)],
        Action::Drop => vec![Expr::Verdict(NF_DROP)],
        Action::NoTrack => vec![Expr::NoTrack, Expr::Verdict(NF_ACCEPT)],
        Action::RejectTcp => vec![Expr::Reject { tcp: true }],
        Action::RejectIcmp => vec![Expr::Reject { tcp: false }],
    }
}

/// Tag of the kernel rules of config rule `index` (0-based).
pub fn rule_tag(index: usize) -> String {
    format!("rule {}", index + 1)
}

fn chain_rules(c: &NftChain, policy_probe: bool) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    for r in &c.rules {
        for mut e in expand(&r.terms) {
            e.push(Expr::Counter);
            e.extend(action_exprs(r.action));
            out.push(RuleSpec {
                chain: c.name.to_string(),
                exprs: e,
                tag: rule_tag(r.index),
            });
        }
    }
    if policy_probe {
        out.push(RuleSpec {
            chain: c.name.to_string(),
            exprs: vec![Expr::Counter],
            tag: POLICY_TAG.to_string(),
        });
    }
    out
}

/// The export's ruleset as a table named `name`; with `policy_probes`, each
/// chain ends with a rule that only counts (tag [`POLICY_TAG`]).
pub fn table_from_ruleset(name: &str, rs: &Ruleset, policy_probes: bool) -> TableSpec {
    TableSpec {
        name: name.to_string(),
        chains: rs
            .chains
            .iter()
            .map(|c| ChainSpec {
                name: c.name.to_string(),
                hook: hook_num(c.hook),
                priority: c.priority,
                accept: c.accept,
            })
            .collect(),
        rules: rs
            .chains
            .iter()
            .flat_map(|c| chain_rules(c, policy_probes))
            .collect(),
    }
}

// ------------------------------------------------------------ encoding

/// Netlink attributes being built.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }

    fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        self.put(ty, &ifname(s))
    }

    fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        f(&mut inner);
        self.put(ty | NLA_F_NESTED, &inner.0)
    }
}

/// `NFTA_DATA_VALUE` inside a nest of type `ty`.
fn data_value(a: &mut Attrs, ty: u16, v: &[u8]) {
    a.nest(ty, |d| {
        d.put(1, v);
    });
}

fn expr_attrs(e: &Expr, a: &mut Attrs) {
    let (name, data): (&str, Option<Attrs>) = match e {
        Expr::Meta(key) => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1).be32(2, *key);
            ("meta", Some(d))
        }
        Expr::Payload { base, offset, len } => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1)
                .be32(2, *base)
                .be32(3, *offset)
                .be32(4, *len);
            ("payload", Some(d))
        }
        Expr::Bitwise(mask) => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1)
                .be32(2, NFT_REG_1)
                .be32(3, mask.len() as u32);
            data_value(&mut d, 4, mask);
            data_value(&mut d, 5, &vec![0u8; mask.len()]);
            ("bitwise", Some(d))
        }
        Expr::Cmp { op, data } => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1).be32(2, *op);
            data_value(&mut d, 3, data);
            ("cmp", Some(d))
        }
        Expr::FibType { dst } => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1).be32(2, NFT_FIB_RESULT_ADDRTYPE).be32(
                3,
                if *dst {
                    NFTA_FIB_F_DADDR
                } else {
                    NFTA_FIB_F_SADDR
                },
            );
            ("fib", Some(d))
        }
        Expr::CtState => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_1).be32(2, NFT_CT_STATE);
            ("ct", Some(d))
        }
        Expr::Counter => ("counter", None),
        Expr::NoTrack => ("notrack", None),
        Expr::Reject { tcp } => {
            let mut d = Attrs::default();
            if *tcp {
                d.be32(1, NFT_REJECT_TCP_RST);
            } else {
                d.be32(1, NFT_REJECT_ICMPX_UNREACH)
                    .put(2, &[NFT_REJECT_ICMPX_PORT_UNREACH]);
            }
            ("reject", Some(d))
        }
        Expr::Verdict(code) => {
            let mut d = Attrs::default();
            d.be32(1, NFT_REG_VERDICT).nest(2, |data| {
                data.nest(2, |v| {
                    v.be32(1, *code);
                });
            });
            ("immediate", Some(d))
        }
    };
    a.nest(rule_attr::LIST_ELEM, |el| {
        el.str(rule_attr::EXPR_NAME, name);
        if let Some(d) = data {
            el.put(rule_attr::EXPR_DATA | NLA_F_NESTED, &d.0);
        }
    });
}

/// nft's user data for a comment (`NFTNL_UDATA_RULE_COMMENT`), so that
/// `nft list ruleset` shows the tag.
fn comment_udata(tag: &str) -> Vec<u8> {
    let mut s: Vec<u8> = tag.bytes().take(250).collect();
    s.push(0);
    let mut v = vec![0u8, s.len() as u8];
    v.extend_from_slice(&s);
    v
}

fn comment_from_udata(u: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 2 <= u.len() {
        let (ty, len) = (u[i], usize::from(u[i + 1]));
        let v = u.get(i + 2..i + 2 + len)?;
        if ty == 0 {
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            return Some(String::from_utf8_lossy(&v[..end]).into_owned());
        }
        i += 2 + len;
    }
    None
}

/// Messages of one request.
struct Batch {
    buf: Vec<u8>,
    seqs: Vec<u32>,
}

fn message(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(family);
    buf.push(0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// A parsed attribute list: type (flags masked off) -> values in order.
fn parse_attrs(mut b: &[u8]) -> BTreeMap<u16, Vec<&[u8]>> {
    let mut m: BTreeMap<u16, Vec<&[u8]>> = BTreeMap::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        m.entry(ty).or_default().push(&b[4..len]);
        let next = (len + 3) & !3;
        b = &b[next.min(b.len())..];
    }
    m
}

fn first<'a>(m: &BTreeMap<u16, Vec<&'a [u8]>>, ty: u16) -> Option<&'a [u8]> {
    m.get(&ty).and_then(|v| v.first().copied())
}

fn be64(b: &[u8]) -> u64 {
    b.get(..8)
        .map(|x| u64::from_be_bytes(x.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// One kernel rule's counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// The rule's tag (its comment), empty if none.
    pub tag: String,
    pub packets: u64,
    pub bytes: u64,
}

/// One connection-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// Layer 4 protocol of the original tuple.
    pub proto: u8,
    /// Original tuple: addresses, ports (ICMP: `sport` is the identifier).
    pub src: std::net::Ipv4Addr,
    pub dst: std::net::Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// TCP state (`enum tcp_conntrack`: 1 SYN_SENT .. 8 CLOSE, 9 SYN_SENT2).
    pub tcp_state: Option<u8>,
}

/// The name routerd uses for a kernel TCP conntrack state.
pub fn tcp_state_name(s: u8) -> &'static str {
    match s {
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        _ => "NONE",
    }
}

/// A netlink socket to nf_tables and conntrack of one network namespace:
/// the namespace of the thread that opened it, whichever thread uses it.
pub struct Nft {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn nl_err(what: &str, e: std::io::Error) -> LabError {
    LabError::Io {
        what: format!("nf_tables netlink: {what}"),
        err: e,
    }
}

impl Nft {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Nft, LabError> {
        let sock = Socket::new(
            Domain::from(AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(NETLINK_NETFILTER)),
        )
        .map_err(|e| nl_err("socket", e))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| nl_err("SO_RCVTIMEO", e))?;
        sock.set_recv_buffer_size(1 << 20)
            .map_err(|e| nl_err("SO_RCVBUF", e))?;
        Ok(Nft {
            sock,
            seq: std::process::id().wrapping_mul(7919),
            buf: vec![0u8; 1 << 17],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn batch(&mut self) -> Batch {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        Batch {
            buf,
            seqs: Vec::new(),
        }
    }

    fn add(&mut self, b: &mut Batch, msg: u16, flags: u16, attrs: &Attrs) {
        let seq = self.next_seq();
        message(
            &mut b.buf,
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            NFPROTO_INET,
            0,
            &attrs.0,
        );
        b.seqs.push(seq);
    }

    /// Reads whatever is queued (answers to an earlier, failed request).
    fn drain(&mut self) {
        let _ = self.sock.set_nonblocking(true);
        while (&self.sock).read(&mut self.buf).is_ok_and(|n| n > 0) {}
        let _ = self.sock.set_nonblocking(false);
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), LabError> {
        self.drain();
        self.sock
            .send(bytes)
            .map(drop)
            .map_err(|e| nl_err("send", e))
    }

    /// Calls `f` on each message that comes back until `done` says so.
    fn receive(
        &mut self,
        mut f: impl FnMut(u16, u32, &[u8]) -> Result<bool, LabError>,
    ) -> Result<(), LabError> {
        loop {
            let n = match (&self.sock).read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(nl_err("receive", e)),
            };
            let data = self.buf[..n].to_vec();
            let mut b = &data[..];
            while b.len() >= 16 {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if f(ty, seq, &b[16..len])? {
                    return Ok(());
                }
                b = &b[((len + 3) & !3).min(b.len())..];
            }
        }
    }

    /// Sends a batch and waits for every message's acknowledgement.
    fn commit(&mut self, mut b: Batch, what: &str) -> Result<(), LabError> {
        let seq = self.next_seq();
        message(
            &mut b.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        self.send(&b.buf)?;
        let mut pending = b.seqs.clone();
        let what = what.to_string();
        self.receive(|ty, seq, payload| {
            if ty != NLMSG_ERROR || payload.len() < 4 {
                return Ok(false);
            }
            let errno = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if errno != 0 {
                let index = b.seqs.iter().position(|s| *s == seq);
                return Err(LabError::Io {
                    what: format!(
                        "nf_tables: {what}: message {} of the batch refused",
                        index.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                    ),
                    err: std::io::Error::from_raw_os_error(-errno),
                });
            }
            pending.retain(|s| *s != seq);
            Ok(pending.is_empty())
        })
    }

    /// Replaces table `t` (removes it if present, then creates it with its
    /// chains and rules), in one transaction.
    pub fn replace(&mut self, t: &TableSpec) -> Result<(), LabError> {
        let mut b = self.batch();
        let mut a = Attrs::default();
        a.str(table_attr::NAME, &t.name);
        self.add(&mut b, NFT_MSG_DESTROYTABLE, 0, &a);
        let mut a = Attrs::default();
        a.str(table_attr::NAME, &t.name).be32(table_attr::FLAGS, 0);
        self.add(&mut b, NFT_MSG_NEWTABLE, NLM_F_CREATE, &a);
        for c in &t.chains {
            let mut a = Attrs::default();
            a.str(chain_attr::TABLE, &t.name)
                .str(chain_attr::NAME, &c.name)
                .nest(chain_attr::HOOK, |h| {
                    h.be32(chain_attr::HOOK_HOOKNUM, c.hook)
                        .be32(chain_attr::HOOK_PRIORITY, c.priority as u32);
                })
                .be32(
                    chain_attr::POLICY,
                    if c.accept { NF_ACCEPT } else { NF_DROP },
                )
                .str(chain_attr::TYPE, "filter");
            self.add(&mut b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, &a);
        }
        for r in &t.rules {
            let mut a = Attrs::default();
            a.str(rule_attr::TABLE, &t.name)
                .str(rule_attr::CHAIN, &r.chain)
                .nest(rule_attr::EXPRESSIONS, |l| {
                    for e in &r.exprs {
                        expr_attrs(e, l);
                    }
                })
                .put(rule_attr::USERDATA, &comment_udata(&r.tag));
            self.add(&mut b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &a);
        }
        self.commit(b, &format!("load table inet {}", t.name))
    }

    /// Removes table `name` if it exists.
    pub fn destroy(&mut self, name: &str) -> Result<(), LabError> {
        let mut b = self.batch();
        let mut a = Attrs::default();
        a.str(table_attr::NAME, name);
        self.add(&mut b, NFT_MSG_DESTROYTABLE, 0, &a);
        self.commit(b, &format!("destroy table inet {name}"))
    }

    fn dump(&mut self, ty: u16, family: u8, mut each: impl FnMut(&[u8])) -> Result<(), LabError> {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        message(
            &mut buf,
            ty,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family,
            0,
            &[],
        );
        self.send(&buf)?;
        self.receive(|t, s, payload| {
            if s != seq {
                return Ok(false);
            }
            match t {
                NLMSG_DONE => Ok(true),
                NLMSG_ERROR => {
                    let errno = payload
                        .get(..4)
                        .map(|p| i32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
                        .unwrap_or(0);
                    if errno == 0 {
                        Ok(true)
                    } else {
                        Err(LabError::Io {
                            what: "netlink dump".into(),
                            err: std::io::Error::from_raw_os_error(-errno),
                        })
                    }
                }
                _ => {
                    if payload.len() >= 4 {
                        each(&payload[4..]);
                    }
                    Ok(false)
                }
            }
        })
    }

    /// The counter of every `inet` rule that has one (NFT_MSG_GETRULE dump).
    pub fn counters(&mut self) -> Result<Vec<Counter>, LabError> {
        let mut out = Vec::new();
        self.dump(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
            NFPROTO_INET,
            |p| {
                let m = parse_attrs(p);
                let mut c = Counter {
                    table: first(&m, rule_attr::TABLE).map(cstr).unwrap_or_default(),
                    chain: first(&m, rule_attr::CHAIN).map(cstr).unwrap_or_default(),
                    handle: first(&m, rule_attr::HANDLE).map(be64).unwrap_or(0),
                    tag: first(&m, rule_attr::USERDATA)
                        .and_then(comment_from_udata)
                        .unwrap_or_default(),
                    packets: 0,
                    bytes: 0,
                };
                let mut has = false;
                let exprs = first(&m, rule_attr::EXPRESSIONS).unwrap_or(&[]);
                for el in parse_attrs(exprs)
                    .get(&rule_attr::LIST_ELEM)
                    .into_iter()
                    .flatten()
                {
                    let e = parse_attrs(el);
                    if first(&e, rule_attr::EXPR_NAME).map(cstr).as_deref() != Some("counter") {
                        continue;
                    }
                    let d = parse_attrs(first(&e, rule_attr::EXPR_DATA).unwrap_or(&[]));
                    c.bytes = first(&d, 1).map(be64).unwrap_or(0);
                    c.packets = first(&d, 2).map(be64).unwrap_or(0);
                    has = true;
                }
                if has {
                    out.push(c);
                }
            },
        )?;
        Ok(out)
    }

    /// Every IPv4 entry of the connection table (ctnetlink dump).
    pub fn conntrack(&mut self) -> Result<Vec<CtEntry>, LabError> {
        let mut out = Vec::new();
        self.dump(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
            NFPROTO_IPV4,
            |p| {
                let m = parse_attrs(p);
                let tuple = first(&m, 1).map(parse_attrs).unwrap_or_default();
                // CTA_TUPLE_IP (1) > CTA_IP_V4_SRC (1), CTA_IP_V4_DST (2).
                let ip = first(&tuple, 1).map(parse_attrs).unwrap_or_default();
                let addr = |t: u16| {
                    first(&ip, t)
                        .and_then(|v| <[u8; 4]>::try_from(v).ok())
                        .map(std::net::Ipv4Addr::from)
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
                };
                // CTA_TUPLE_PROTO (2) > CTA_PROTO_NUM (1), ports (2, 3),
                // ICMP id (4).
                let pr = first(&tuple, 2).map(parse_attrs).unwrap_or_default();
                let be16 = |t: u16| {
                    first(&pr, t)
                        .and_then(|v| <[u8; 2]>::try_from(v).ok())
                        .map(u16::from_be_bytes)
                        .unwrap_or(0)
                };
                let proto = first(&pr, 1).and_then(|v| v.first().copied()).unwrap_or(0);
                let (sport, dport) = if proto == 1 {
                    (be16(4), 0)
                } else {
                    (be16(2), be16(3))
                };
                // CTA_PROTOINFO (4) > CTA_PROTOINFO_TCP (1) > _TCP_STATE (1).
                let tcp_state = first(&m, 4)
                    .map(parse_attrs)
                    .and_then(|i| first(&i, 1).map(parse_attrs))
                    .and_then(|t| first(&t, 1).and_then(|v| v.first().copied()));
                out.push(CtEntry {
                    proto,
                    src: addr(1),
                    dst: addr(2),
                    sport,
                    dport,
                    tcp_state,
                });
            },
        )?;
        let _ = IPCTNL_MSG_CT_NEW;
        Ok(out)
    }

    /// Empties the connection table (IPCTNL_MSG_CT_DELETE with no tuple).
    pub fn flush_conntrack(&mut self) -> Result<(), LabError> {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        message(
            &mut buf,
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_IPV4,
            0,
            &[],
        );
        self.send(&buf)?;
        self.receive(|ty, s, payload| {
            if ty != NLMSG_ERROR || s != seq {
                return Ok(false);
            }
            let errno = payload
                .get(..4)
                .map(|p| i32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
                .unwrap_or(0);
            if errno != 0 {
                return Err(LabError::Io {
                    what: "conntrack flush".into(),
                    err: std::io::Error::from_raw_os_error(-errno),
                });
            }
            Ok(true)
        })
    }
}

/// Counter sums by (table, chain, tag).
pub fn sum_by_tag(c: &[Counter]) -> BTreeMap<(String, String, String), u64> {
    let mut m = BTreeMap::new();
    for x in c {
        *m.entry((x.table.clone(), x.chain.clone(), x.tag.clone()))
            .or_insert(0) += x.packets;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::addr::Ipv4Prefix;

    #[test]
    fn sets_expand_to_one_rule_per_combination_in_order() {
        let terms = vec![
            Term::Iif(vec!["r0".into(), "r1".into()]),
            Term::Proto(6),
            Term::Ports {
                dst: true,
                ranges: vec![(23, 23), (1000, 2000)],
            },
        ];
        let alts = expand(&terms);
        assert_eq!(alts.len(), 4);
        assert_eq!(alts[0][1], cmp_eq(b"r0\0"));
        assert_eq!(alts[1][1], cmp_eq(b"r0\0"));
        assert_eq!(alts[2][1], cmp_eq(b"r1\0"));
        assert_eq!(
            alts[1].last(),
            Some(&Expr::Cmp {
                op: cmp::LTE,
                data: vec![0x07, 0xd0]
            })
        );
    }

    #[test]
    fn prefixes_are_masked_and_ipv4_only() {
        let p = Ipv4Prefix::new(0xc612_0000, 15).unwrap();
        let alts = term_alternatives(&Term::Prefixes {
            dst: false,
            prefixes: vec![p, Ipv4Prefix::host(0xcb00_7109)],
        });
        assert_eq!(
            alts[0],
            vec![
                Expr::Meta(meta::NFPROTO),
                cmp_eq(&[2]),
                Expr::Payload {
                    base: base::NETWORK,
                    offset: 12,
                    len: 4
                },
                Expr::Bitwise(vec![255, 254, 0, 0]),
                cmp_eq(&[198, 18, 0, 0]),
            ]
        );
        assert_eq!(alts[1].len(), 4, "a /32 needs no mask");
    }

    #[test]
    fn ipv6_prefixes_are_masked_and_ipv6_only() {
        let p: dataplane::addr::Ipv6Prefix = "2001:db8::/32".parse().unwrap();
        let alts = term_alternatives(&Term::Prefixes6 {
            dst: true,
            prefixes: vec![p],
        });
        let mut mask = vec![0xff; 4];
        mask.extend([0; 12]);
        let mut addr = vec![0x20, 0x01, 0x0d, 0xb8];
        addr.extend([0; 12]);
        assert_eq!(
            alts,
            [vec![
                Expr::Meta(meta::NFPROTO),
                cmp_eq(&[10]),
                Expr::Payload {
                    base: base::NETWORK,
                    offset: 24,
                    len: 16
                },
                Expr::Bitwise(mask),
                cmp_eq(&addr),
            ]]
        );
        assert_eq!(
            term_alternatives(&Term::Family(dataplane::rules::Family::Ipv6)),
            [vec![Expr::Meta(meta::NFPROTO), cmp_eq(&[10])]]
        );
    }

    #[test]
    fn attributes_are_padded_and_nests_flagged() {
        let mut a = Attrs::default();
        a.str(1, "ab").nest(4, |n| {
            n.be32(1, 7);
        });
        assert_eq!(
            a.0,
            [
                7, 0, 1, 0, b'a', b'b', 0, 0, // "ab\0" padded
                12, 0, 4, 0x80, 8, 0, 1, 0, 0, 0, 0, 7
            ]
        );
        let m = parse_attrs(&a.0);
        assert_eq!(first(&m, 1), Some(&b"ab\0"[..]));
        assert_eq!(
            comment_from_udata(&comment_udata("rule 3")).as_deref(),
            Some("rule 3")
        );
        assert_eq!(
            ct_state_mask(CtState::Established.bit() | CtState::Related.bit()),
            6
        );
    }
}
