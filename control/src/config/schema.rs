//! The config's keys, their types and their docs, as one table: the
//! decoder takes every mapping's allowed keys from it (so its unknown-key
//! check and the schema cannot disagree), and [`schema_json`] turns it
//! into a JSON Schema (draft-07) for editors (yaml-language-server:
//! `# yaml-language-server: $schema=routerd.schema.json`).
//!
//! The schema says what a YAML 1.2 reader sees (`burst: 64` is a number,
//! `mac: "02:.."` text). It is as strict as the decoder on keys, types,
//! words and ranges, and leaves to the decoder what needs the whole file
//! (a gateway on a connected network, a port match needing `protocol`,
//! duplicates); the decoder also takes quoted numbers and explicit nulls,
//! which the schema does not offer.

use serde_json::{json, Map, Value};

/// The type of a value.
#[derive(Debug)]
pub enum Ty {
    /// A mapping with these keys.
    Obj(&'static Obj),
    /// A list of values.
    List(&'static Ty),
    /// One value or a list of them.
    OneOrList(&'static Ty),
    /// Text matching a regular expression (JSON Schema `pattern`).
    Text(&'static str),
    /// An integer in a range.
    Int(u64, u64),
    /// One of these integers.
    IntIn(&'static [u64]),
    /// `true` or `false`.
    Bool,
    /// One of these words.
    Words(&'static [&'static str]),
    /// One of the names of a table of names and numbers (the decoder's).
    Named(&'static [(&'static str, u8)]),
    /// Any of these types.
    Either(&'static [Ty]),
}

/// A key of a mapping.
#[derive(Debug)]
pub struct Field {
    pub key: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
}

/// A mapping: its keys, those it needs, and what it is.
#[derive(Debug)]
pub struct Obj {
    pub fields: &'static [Field],
    pub required: &'static [&'static str],
    pub doc: &'static str,
}

impl Obj {
    /// The keys allowed, in the documented order.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.key)
    }

    /// Whether `key` is allowed.
    pub fn has(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.key == key)
    }
}

const fn f(key: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { key, ty, doc }
}

/// An IPv4 address (as a regular expression).
macro_rules! v4 {
    () => {
        r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
    };
}
/// An IPv6 address in any of RFC 4291 2.2's forms (as a regular expression).
macro_rules! v6 {
    () => {
        concat!(
            r"(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,7}:",
            r"|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}",
            r"|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}",
            r"|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}",
            r"|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}",
            r"|:((:[0-9A-Fa-f]{1,4}){1,7}|:)",
            r"|([0-9A-Fa-f]{1,4}:){6}",
            v4!(),
            r"|::([Ff]{4}(:0{1,4})?:)?",
            v4!(),
            r"|([0-9A-Fa-f]{1,4}:){1,4}:",
            v4!(),
            ")"
        )
    };
}
macro_rules! v4_len {
    () => {
        r"/([0-9]|[12][0-9]|3[0-2])"
    };
}
macro_rules! v6_len {
    () => {
        r"/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])"
    };
}

/// A prefix of either family, or `default`.
const PREFIX: &str = concat!("^(default|", v4!(), v4_len!(), "|", v6!(), v6_len!(), ")$");
/// An IPv6 prefix.
const PREFIX6: &str = concat!("^", v6!(), v6_len!(), "$");
const IFADDR: &str = concat!("^(", v4!(), v4_len!(), "|", v6!(), v6_len!(), ")$");
const ADDRESS: &str = concat!("^(", v4!(), "|", v6!(), ")$");
const MAC: &str = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$";
/// Linux `dev_valid_name`.
const DEVICE: &str = r"^[^/:\s]{1,15}$";
const IFNAME: &str = r"^[A-Za-z0-9._-]{1,32}$";
const DURATION: &str = r"^[0-9]+[smhd]?$";
const PORT_TEXT: &str = r"^[0-9]{1,5}(-[0-9]{1,5})?$";
const ABSOLUTE: &str = r"^/";
const SOCKET_ADDR: &str = r"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}$";
const ANY_TEXT: &str = r"";

use super::decode::RT_PROTOS;
use super::rules::{ICMPV6_CODES, ICMPV6_TYPES, ICMP_CODES, ICMP_TYPES};

pub static DATAPLANE: Obj = Obj {
    doc: "Settings of the poll-mode workers and ports (a restart applies them).",
    required: &[],
    fields: &[
        f("workers", Ty::List(&Ty::Int(0, 4095)), "Cores for the poll-mode workers, one pinned worker each; distinct, at least one (default [0])."),
        f("burst", Ty::Int(1, 256), "Frames per RX/TX burst (default 64)."),
        f("umem_frames", Ty::IntIn(&[512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576]), "UMEM frames: a power of two, at least 512 and 4 bursts (default 16384)."),
        f("xdp_mode", Ty::Words(&["native", "generic"]), "Driver XDP or the skb fallback (default native)."),
        f("xdp_bind", Ty::Words(&["auto", "copy", "zerocopy"]), "How the AF_XDP sockets bind: auto (zero-copy where the driver offers it), copy, or zerocopy (refuse to start without it). Default auto."),
        f("busy_poll", Ty::Bool, "Preferred busy polling on every AF_XDP socket (default false)."),
        f("ip_options", Ty::Words(&["forward", "drop"]), "Packets with IP options: forwarded untouched or dropped (default forward)."),
    ],
};

pub static CONTROL: Obj = Obj {
    doc: "The control socket routerctl talks to.",
    required: &[],
    fields: &[f(
        "socket",
        Ty::Text(ABSOLUTE),
        "Absolute path of the Unix socket (default /run/afxdp-router/routerd.sock).",
    )],
};

pub static INTERFACE: Obj = Obj {
    doc: "A port: a kernel netdev routerd takes over. Their order gives the port numbers.",
    required: &["name", "device"],
    fields: &[
        f(
            "name",
            Ty::Text(IFNAME),
            "The name rules and routes use (not host or local).",
        ),
        f(
            "device",
            Ty::Text(DEVICE),
            "The kernel netdev taken over (e.g. eth0).",
        ),
        f(
            "addresses",
            Ty::OneOrList(&Ty::Text(IFADDR)),
            "Addresses with their prefix length, IPv4 and IPv6 mixed, e.g. [198.18.0.1/24, 2001:db8::1/64]; may be empty. No link-local IPv6 address: each port's comes from its MAC.",
        ),
        f("mtu", Ty::Int(68, 9000), "MTU (default 1500)."),
        f(
            "router_advertisements",
            Ty::Either(&[Ty::Bool, Ty::Obj(&RA)]),
            "IPv6 router advertisements on this interface (RFC 4861): true (every /64 on-link prefix, SLAAC) or their settings; off when absent. Needs an IPv6 address.",
        ),
    ],
};

pub static RA: Obj = Obj {
    doc: "Router advertisements (radvd's settings; RFC 4861 6.2.1).",
    required: &[],
    fields: &[
        f("interval", Ty::Int(4, 1800), "Seconds between unsolicited advertisements, MaxRtrAdvInterval (default 200)."),
        f("router_lifetime", Ty::Int(0, 9000), "Seconds hosts keep the router as a default router: 0 (not a default router) or at least the interval (default 1800)."),
        f("hop_limit", Ty::Int(0, 255), "Hop limit hosts use, 0: unspecified (default 64)."),
        f("managed", Ty::Bool, "M flag: addresses from DHCPv6 (default false)."),
        f("other", Ty::Bool, "O flag: other settings from DHCPv6 (default false)."),
        f("mtu", Ty::Bool, "Announce the interface's MTU (default true)."),
        f(
            "prefixes",
            Ty::List(&Ty::Either(&[Ty::Text(PREFIX6), Ty::Obj(&RA_PREFIX)])),
            "On-link prefixes of this interface to announce (default: every /64 on-link prefix).",
        ),
    ],
};

pub static RA_PREFIX: Obj = Obj {
    doc: "An announced prefix (RFC 4861 4.6.2).",
    required: &["prefix"],
    fields: &[
        f(
            "prefix",
            Ty::Text(PREFIX6),
            "An on-link prefix of the interface.",
        ),
        f(
            "valid_lifetime",
            LIFETIME_REF,
            "Seconds or infinity (default 2592000, 30 days).",
        ),
        f(
            "preferred_lifetime",
            LIFETIME_REF,
            "Seconds or infinity, at most the valid lifetime (default 604800, 7 days).",
        ),
        f("on_link", Ty::Bool, "L flag (default true)."),
        f(
            "autonomous",
            Ty::Bool,
            "A flag: hosts form addresses (SLAAC), needs a /64 (default true).",
        ),
    ],
};

const LIFETIME_REF: Ty = Ty::Either(&[Ty::Int(0, u32::MAX as u64), Ty::Words(&["infinity"])]);

pub static HOST: Obj = Obj {
    doc: "The host path: a TUN device carrying the router's own traffic to the kernel.",
    required: &[],
    fields: &[
        f(
            "tun",
            Ty::Text(DEVICE),
            "The TUN device's name (default rtr0).",
        ),
        f(
            "enabled",
            Ty::Bool,
            "false: no host path, a pure forwarder (default true).",
        ),
    ],
};

pub static ROUTE: Obj = Obj {
    doc: "A route: exactly one of via, interface, blackhole: true or unreachable: true (an IPv6 via may name its interface).",
    required: &["to"],
    fields: &[
        f(
            "to",
            Ty::Text(PREFIX),
            "A destination prefix (no host bits), IPv4 or IPv6, or default (IPv6's with an IPv6 via; write ::/0 for an IPv6 blackhole or unreachable default).",
        ),
        f(
            "via",
            Ty::OneOrList(&Ty::Text(ADDRESS)),
            "A gateway on a connected network, or a list of them: equal-cost paths (ECMP, one flow keeps one path; IPv4 only). An IPv6 gateway may be link-local with interface.",
        ),
        f(
            "interface",
            Ty::Text(IFNAME),
            "Directly connected out of this interface; with an IPv6 via, the gateway's interface (needed for a link-local gateway).",
        ),
        f("blackhole", Ty::Bool, "true: drop silently."),
        f(
            "unreachable",
            Ty::Bool,
            "true: drop and answer ICMP net unreachable (ICMPv6 no route).",
        ),
    ],
};

pub static NEIGHBOUR: Obj = Obj {
    doc: "A static ARP or IPv6 neighbour entry on a connected network.",
    required: &["address", "mac"],
    fields: &[
        f(
            "address",
            Ty::Text(ADDRESS),
            "The neighbour's IPv4 or IPv6 address (link-local with interface).",
        ),
        f(
            "interface",
            Ty::Text(IFNAME),
            "The interface of a link-local IPv6 neighbour (a global one's comes from the on-link prefixes).",
        ),
        f(
            "mac",
            Ty::Text(MAC),
            "Its unicast MAC address, e.g. \"02:00:00:00:00:02\" (quoted).",
        ),
    ],
};

pub static TIMEOUTS: Obj = Obj {
    doc: "Connection tracking timeouts: 30s, 2m, 1h, 5d or plain seconds; never 0.",
    required: &[],
    fields: &[
        f("tcp_syn_sent", DURATION_TY_REF, "Default 2m."),
        f("tcp_syn_recv", DURATION_TY_REF, "Default 1m."),
        f("tcp_established", DURATION_TY_REF, "Default 5d."),
        f("tcp_fin_wait", DURATION_TY_REF, "Default 2m."),
        f("tcp_close_wait", DURATION_TY_REF, "Default 1m."),
        f("tcp_last_ack", DURATION_TY_REF, "Default 30s."),
        f("tcp_time_wait", DURATION_TY_REF, "Default 2m."),
        f("tcp_close", DURATION_TY_REF, "Default 10s."),
        f(
            "udp",
            DURATION_TY_REF,
            "UDP without replies yet. Default 30s.",
        ),
        f(
            "udp_stream",
            DURATION_TY_REF,
            "UDP once replies were seen. Default 2m.",
        ),
        f("icmp", DURATION_TY_REF, "Default 30s."),
        f("generic", DURATION_TY_REF, "Other protocols. Default 10m."),
    ],
};

/// Every timeout has the one duration type.
const DURATION_TY_REF: Ty = Ty::Either(&[Ty::Int(1, u32::MAX as u64), Ty::Text(DURATION)]);

pub static CONNTRACK: Obj = Obj {
    doc: "Connection tracking.",
    required: &[],
    fields: &[
        f(
            "max_entries",
            Ty::Int(1, 16 * 1024 * 1024),
            "Entries per worker table (default 262144).",
        ),
        f(
            "timeouts",
            Ty::Obj(&TIMEOUTS),
            "Timeouts by state and protocol.",
        ),
        f(
            "tcp_loose",
            Ty::Bool,
            "Pick up TCP flows mid-stream, as netfilter does (default true).",
        ),
    ],
};

pub static ICMP_ERRORS: Obj = Obj {
    doc: "Rate limit of the ICMP errors the router sends: a token bucket per source.",
    required: &[],
    fields: &[
        f(
            "rate",
            Ty::Int(1, 1_000_000),
            "Errors per second (default 10).",
        ),
        f("burst", Ty::Int(1, 1_000_000), "Bucket size (default 20)."),
    ],
};

pub static METRICS: Obj = Obj {
    doc: "The Prometheus/OpenMetrics listener (off when absent).",
    required: &[],
    fields: &[f(
        "listen",
        Ty::Text(SOCKET_ADDR),
        "Address and port, e.g. \"127.0.0.1:9477\".",
    )],
};

pub static MATCH: Obj = Obj {
    doc: "Conditions; all present ones must hold.",
    required: &[],
    fields: &[
        f(
            "in",
            Ty::Either(&[Ty::Words(&["host"]), IFACES_REF]),
            "Input interface(s), or host (the router's own packets).",
        ),
        f(
            "out",
            Ty::Either(&[Ty::Words(&["host"]), IFACES_REF]),
            "Output interface(s), or host (to the router); not in raw rules.",
        ),
        f(
            "source",
            ADDRS_REF,
            "Prefix(es) of either family, mixed, or local (the router's own addresses, both families).",
        ),
        f(
            "destination",
            ADDRS_REF,
            "Prefix(es) of either family, mixed, or local (the router's own addresses, both families).",
        ),
        f(
            "family",
            Ty::Words(&["ipv4", "ipv6"]),
            "Only this family (nftables' meta nfproto); rules match both when absent.",
        ),
        f(
            "protocol",
            Ty::Either(&[Ty::Words(&["tcp", "udp", "icmp", "icmpv6", "ipv6-icmp"]), Ty::Int(0, 255)]),
            "tcp, udp, icmp, icmpv6 or a protocol number.",
        ),
        f(
            "source_port",
            PORTS_REF,
            "A port, \"lo-hi\" or a list; needs protocol tcp or udp.",
        ),
        f(
            "destination_port",
            PORTS_REF,
            "A port, \"lo-hi\" or a list; needs protocol tcp or udp.",
        ),
        f(
            "state",
            Ty::OneOrList(&Ty::Words(&[
                "new",
                "established",
                "related",
                "invalid",
                "untracked",
            ])),
            "Connection states; not in raw rules.",
        ),
        f(
            "icmp_type",
            Ty::Either(&[Ty::Named(ICMP_TYPES), Ty::Int(0, 255)]),
            "An ICMP type (nftables name or number); needs protocol icmp.",
        ),
        f(
            "icmp_code",
            Ty::Either(&[Ty::Named(ICMP_CODES), Ty::Int(0, 255)]),
            "An ICMP code (nftables name or number); needs protocol icmp.",
        ),
        f(
            "icmpv6_type",
            Ty::Either(&[Ty::Named(ICMPV6_TYPES), Ty::Int(0, 255)]),
            "An ICMPv6 type (nftables name or number); implies protocol icmpv6.",
        ),
        f(
            "icmpv6_code",
            Ty::Either(&[Ty::Named(ICMPV6_CODES), Ty::Int(0, 255)]),
            "An ICMPv6 code (nftables name or number); implies protocol icmpv6.",
        ),
    ],
};

const IFACES_REF: Ty = Ty::OneOrList(&Ty::Text(IFNAME));
const ADDRS_REF: Ty = Ty::Either(&[Ty::Words(&["local"]), Ty::OneOrList(&Ty::Text(PREFIX))]);
const PORTS_REF: Ty = Ty::OneOrList(&Ty::Either(&[Ty::Int(0, 65535), Ty::Text(PORT_TEXT)]));

pub static RAW_RULE: Obj = Obj {
    doc: "A raw rule: first match wins; no match means tracked.",
    required: &["action"],
    fields: &[
        f("match", Ty::Obj(&MATCH), "Conditions (none: every packet)."),
        f(
            "action",
            Ty::Words(&["notrack", "accept"]),
            "notrack: untracked; accept: stop the raw stage, tracked.",
        ),
        f(
            "comment",
            Ty::Text(ANY_TEXT),
            "Shown in stats, explain and traces.",
        ),
    ],
};

pub static RAW: Obj = Obj {
    doc: "Rules before connection tracking (iptables' raw table).",
    required: &[],
    fields: &[
        f(
            "prerouting",
            Ty::List(&Ty::Obj(&RAW_RULE)),
            "Packets from the ports.",
        ),
        f(
            "output",
            Ty::List(&Ty::Obj(&RAW_RULE)),
            "Packets from the host (the router's own).",
        ),
    ],
};

pub static FILTER_RULE: Obj = Obj {
    doc: "A filter rule: first match wins, then the chain's policy.",
    required: &["action"],
    fields: &[
        f("match", Ty::Obj(&MATCH), "Conditions (none: every packet)."),
        f(
            "action",
            Ty::Words(&["accept", "drop", "reject"]),
            "reject answers TCP with a RST, the rest with ICMP port unreachable.",
        ),
        f(
            "comment",
            Ty::Text(ANY_TEXT),
            "Shown in stats, explain and traces.",
        ),
    ],
};

pub static CHAIN: Obj = Obj {
    doc: "A filter chain.",
    required: &[],
    fields: &[
        f(
            "policy",
            Ty::Words(&["accept", "drop"]),
            "When no rule matches (default accept).",
        ),
        f(
            "rules",
            Ty::List(&Ty::Obj(&FILTER_RULE)),
            "In order; first match wins.",
        ),
    ],
};

pub static FILTER: Obj = Obj {
    doc: "Stateful filter chains.",
    required: &[],
    fields: &[
        f("input", Ty::Obj(&CHAIN), "Packets to the router itself."),
        f(
            "forward",
            Ty::Obj(&CHAIN),
            "Packets routed between interfaces.",
        ),
        f(
            "output",
            Ty::Obj(&CHAIN),
            "Packets the router itself sends.",
        ),
    ],
};

/// The whole file.
pub static KERNEL_ROUTES: Obj = Obj {
    doc: "Follow a kernel routing table over rtnetlink (routes written by BIRD, FRR or ip route), mirrored into the dataplane.",
    required: &[],
    fields: &[
        f(
            "table",
            Ty::Either(&[Ty::Words(&["main"]), Ty::Int(1, u32::MAX as u64)]),
            "main (254, the default) or a table number (not 255, the kernel's local table).",
        ),
        f(
            "protocols",
            Ty::List(&Ty::Either(&[Ty::Named(RT_PROTOS), Ty::Int(0, 255)])),
            "rtm_protocol names or numbers of the routes to take (default: all but kernel).",
        ),
    ],
};

pub static TOP: Obj = Obj {
    doc: "afxdp-router: the routerd config (control/src/config/mod.rs documents every key).",
    required: &["interfaces"],
    fields: &[
        f("dataplane", Ty::Obj(&DATAPLANE), DATAPLANE.doc),
        f("control", Ty::Obj(&CONTROL), CONTROL.doc),
        f(
            "interfaces",
            Ty::List(&Ty::Obj(&INTERFACE)),
            "The ports, at most 62; at least one.",
        ),
        f("host", Ty::Obj(&HOST), HOST.doc),
        f(
            "routes",
            Ty::List(&Ty::Obj(&ROUTE)),
            "Configured routes (connected ones come from the addresses).",
        ),
        f(
            "neighbors",
            Ty::List(&Ty::Obj(&NEIGHBOUR)),
            "Static ARP and IPv6 neighbour entries.",
        ),
        f("conntrack", Ty::Obj(&CONNTRACK), CONNTRACK.doc),
        f("icmp_errors", Ty::Obj(&ICMP_ERRORS), ICMP_ERRORS.doc),
        f("metrics", Ty::Obj(&METRICS), METRICS.doc),
        f("raw", Ty::Obj(&RAW), RAW.doc),
        f("filter", Ty::Obj(&FILTER), FILTER.doc),
        f("kernel_routes", Ty::Obj(&KERNEL_ROUTES), KERNEL_ROUTES.doc),
    ],
};

fn ty_json(t: &Ty) -> Value {
    match t {
        Ty::Obj(o) => obj_json(o),
        Ty::List(t) => json!({ "type": "array", "items": ty_json(t) }),
        Ty::OneOrList(t) => {
            json!({ "anyOf": [ty_json(t), { "type": "array", "items": ty_json(t) }] })
        }
        Ty::Text("") => json!({ "type": "string" }),
        Ty::Text(p) => json!({ "type": "string", "pattern": p }),
        Ty::Int(lo, hi) => json!({ "type": "integer", "minimum": lo, "maximum": hi }),
        Ty::IntIn(v) => json!({ "type": "integer", "enum": v }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Words(w) => json!({ "type": "string", "enum": w }),
        Ty::Named(t) => {
            json!({ "type": "string", "enum": t.iter().map(|(n, _)| *n).collect::<Vec<_>>() })
        }
        Ty::Either(ts) => json!({ "anyOf": ts.iter().map(ty_json).collect::<Vec<_>>() }),
    }
}

fn obj_json(o: &Obj) -> Value {
    let mut props = Map::new();
    for fl in o.fields {
        let mut v = ty_json(&fl.ty);
        if let Value::Object(m) = &mut v {
            m.insert("description".into(), json!(fl.doc));
        }
        props.insert(fl.key.to_string(), v);
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("description".into(), json!(o.doc));
    m.insert("properties".into(), Value::Object(props));
    m.insert("additionalProperties".into(), json!(false));
    if !o.required.is_empty() {
        m.insert("required".into(), json!(o.required));
    }
    Value::Object(m)
}

/// The JSON Schema of the config file.
pub fn schema_json() -> Value {
    let mut v = obj_json(&TOP);
    if let Value::Object(m) = &mut v {
        m.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-07/schema#"),
        );
        m.insert("title".into(), json!("routerd config"));
    }
    v
}

/// [`schema_json`] as the committed `configs/routerd.schema.json` holds it.
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&schema_json()).unwrap_or_default()
}
