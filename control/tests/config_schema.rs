//! The JSON Schema of the config (`routerctl generate schema`): the
//! committed copy is what the code generates, every shipped config
//! validates against it (read as YAML 1.2 by yaml-rust2, not by the
//! decoder's parser), and a config with an unknown key or a value of the
//! wrong type fails it as the decoder fails it.

use std::path::{Path, PathBuf};

use control::config::Config;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// YAML as a JSON value, with YAML 1.2's core types.
fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => panic!("a key that is not a scalar: {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("not plain YAML: {other:?}"),
    }
}

fn yaml_json(text: &str) -> Value {
    let docs = YamlLoader::load_from_str(text).expect("YAML");
    assert_eq!(docs.len(), 1, "one document");
    to_json(&docs[0])
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("configs/routerd.schema.json")).unwrap(),
    )
    .expect("the committed schema is JSON");
    jsonschema::draft7::new(&schema).expect("a valid draft-07 schema")
}

/// The schema the code generates now (the committed copy is held equal to
/// it by its own test).
fn code_validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&control::config::schema::schema_json())
        .expect("a valid draft-07 schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_committed_schema_is_what_the_code_generates() {
    let committed = std::fs::read_to_string(repo("configs/routerd.schema.json")).unwrap();
    assert_eq!(
        committed.trim_end(),
        control::config::schema::schema_text(),
        "configs/routerd.schema.json is stale: run `routerctl generate schema > configs/routerd.schema.json`"
    );
    // And routerctl prints the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(["generate", "schema"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn every_shipped_config_validates() {
    let v = validator();
    let files = shipped();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        Config::from_str(&text, &f).unwrap_or_else(|e| panic!("{e}"));
        let errs = errors(&v, &yaml_json(&text));
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
}

/// Edits of the transit config that the decoder refuses, for a key or a
/// type; each must fail the schema too, at the same place.
#[test]
fn an_unknown_key_or_a_wrong_type_fails_validation() {
    let v = validator();
    let base = std::fs::read_to_string(repo("configs/transit-router.yaml")).unwrap();
    assert!(errors(&v, &yaml_json(&base)).is_empty());
    let cases: &[(&str, &str, &str)] = &[
        // Unknown keys, at the top and deep in a rule.
        ("dataplane:", "dataplan:", ""),
        ("  burst: 64", "  burst: 64\n  bursts: 64", "/dataplane"),
        (
            "match: { state: [established, related] }",
            "match: { state: [established, related], destinaton_port: 22 }",
            "/filter/input/rules/0/match",
        ),
        // Wrong types and values.
        ("  burst: 64", "  burst: fast", "/dataplane/burst"),
        ("  burst: 64", "  burst: 1000", "/dataplane/burst"),
        (
            "  umem_frames: 16384",
            "  umem_frames: 5000",
            "/dataplane/umem_frames",
        ),
        ("xdp_mode: native", "xdp_mode: nativ", "/dataplane/xdp_mode"),
        (
            "max_entries: 262144",
            "max_entries: [1]",
            "/conntrack/max_entries",
        ),
        ("udp: 30s", "udp: soon", "/conntrack/timeouts/udp"),
        (
            "    policy: drop",
            "    policy: dorp",
            "/filter/input/policy",
        ),
        (
            "action: notrack ",
            "action: notrak ",
            "/raw/prerouting/1/action",
        ),
        (
            "mac: \"02:00:00:00:00:02\"",
            "mac: \"02:00:00:00:00\"",
            "/neighbors/0/mac",
        ),
        ("  - to: default", "  - to: 0.0.0.0/33", "/routes/1/to"),
        (
            "addresses: [198.18.0.1/24,",
            "addresses: [198.18.0.1,",
            "/interfaces/0/addresses",
        ),
        ("2001:db8::1/64]", "2001:db8::1]", "/interfaces/0/addresses"),
        ("via: 2001:db8::2", "via: 2001:db8::g", "/routes/3/via"),
        (
            "router_advertisements: true",
            "router_advertisements: yes",
            "/interfaces/1/router_advertisements",
        ),
        (
            "icmpv6_type: echo-request",
            "icmpv6_type: echo",
            "/filter/input/rules/3/match/icmpv6_type",
        ),
        (
            "destination_port: [23, 2323]",
            "destination_port: [23, telnet]",
            "/filter/forward/rules/0/match/destination_port",
        ),
        (
            "icmp_type: echo-request",
            "icmp_type: echo",
            "/filter/input/rules/1/match/icmp_type",
        ),
    ];
    for (from, to, at) in cases {
        assert!(base.contains(from), "{from:?} is not in the transit config");
        let text = base.replacen(from, to, 1);
        assert!(
            Config::from_str(&text, Path::new("t.yaml")).is_err(),
            "the decoder takes {to:?}"
        );
        let errs = errors(&v, &yaml_json(&text));
        assert!(!errs.is_empty(), "the schema takes {to:?}");
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{at}:"))),
            "{to:?}: not at {at:?}: {errs:#?}"
        );
    }
    // A config without interfaces fails both.
    let text = "dataplane: { workers: [1] }\n";
    assert!(Config::from_str(text, Path::new("t.yaml")).is_err());
    assert!(!errors(&v, &yaml_json(text)).is_empty());
}

/// Every mapping the schema allows a key in, the decoder allows it in: a
/// key is known to both or to neither (both read one table). Checked by
/// putting each top-level section's keys, one at a time, into a config.
#[test]
fn the_decoder_knows_every_key_the_schema_lists_and_no_other() {
    use control::config::schema::TOP;
    let base = "interfaces:\n  - { name: wan, device: r0, addresses: [198.18.0.1/24] }\n";
    for top in TOP.keys() {
        let known = Config::from_str(&format!("{base}{top}: {{}}\n"), Path::new("t.yaml"));
        // An empty mapping may still be wrong for a list section; what
        // matters is that it is not an unknown key.
        if let Err(e) = &known {
            assert!(!e.message.contains("unknown key"), "{top}: {e}");
        }
        let unknown = Config::from_str(&format!("{base}{top}x: {{}}\n"), Path::new("t.yaml"))
            .expect_err("a key the schema lacks");
        assert!(unknown.message.contains("unknown key"), "{unknown}");
    }
}

/// A config with every key of the schema somewhere (the coverage test
/// below fails when the schema grows a key this lacks).
const FULL: &str = r#"
dataplane: { workers: [1], burst: 64, umem_frames: 4096, xdp_mode: native, xdp_bind: auto, busy_poll: false, ip_options: forward }
control: { socket: /run/afxdp-router/routerd.sock }
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24, 2001:db8::1/64, 2001:db8:2::1/64]
    mtu: 1500
    router_advertisements:
      interval: 200
      router_lifetime: 1800
      hop_limit: 64
      managed: false
      other: false
      mtu: true
      prefixes:
        - 2001:db8::/64
        - { prefix: 2001:db8:2::/64, valid_lifetime: infinity, preferred_lifetime: 604800, on_link: true, autonomous: true }
  - { name: lan, device: r1, addresses: 198.19.0.1/24, mtu: 1500 }
host: { tun: rtr0, enabled: true }
routes:
  - { to: 203.0.113.0/24, via: 198.19.0.2 }
  - { to: 203.0.113.0/25, via: [198.19.0.2, 198.19.0.3] }
  - { to: 198.18.128.0/24, interface: lan }
  - { to: 198.18.129.0/24, blackhole: true }
  - { to: 198.18.130.0/24, unreachable: true }
  - { to: 2001:db8:5::/48, via: 2001:db8::2 }
  - { to: "::/0", via: fe80::2, interface: wan }
neighbors:
  - { address: 198.19.0.2, mac: "02:00:00:00:00:02" }
  - { address: fe80::2, interface: wan, mac: "02:00:00:00:00:03" }
conntrack:
  max_entries: 1000
  tcp_loose: true
  timeouts: { tcp_syn_sent: 2m, tcp_syn_recv: 60, tcp_established: 5d, tcp_fin_wait: 2m, tcp_close_wait: 1m, tcp_last_ack: 30s, tcp_time_wait: 2m, tcp_close: 10s, udp: 30s, udp_stream: 2m, icmp: 30s, generic: 1h }
icmp_errors: { rate: 10, burst: 20 }
metrics: { listen: "127.0.0.1:9477" }
raw:
  prerouting:
    - { match: { source: 198.18.0.0/24, destination: local, protocol: tcp, source_port: 1000, destination_port: [22, "1000-2000"] }, action: accept, comment: ssh }
  output:
    - { match: { in: host, protocol: icmp, icmp_type: echo-reply, icmp_code: 0 }, action: notrack }
    - { match: { in: host, icmpv6_type: echo-reply, icmpv6_code: 0 }, action: notrack }
filter:
  input: { policy: drop, rules: [ { match: { out: host, state: [new, established], family: ipv4 }, action: accept, comment: in } ] }
  forward: { policy: accept, rules: [ { match: { destination: [203.0.113.0/24] }, action: reject } ] }
  output: { policy: accept, rules: [ { match: { in: host, source: local, protocol: udp }, action: drop } ] }
kernel_routes: { table: main, protocols: [bgp] }
"#;

/// Every (mapping, key) of the schema, by the mapping's address.
fn schema_keys(
    o: &'static control::config::schema::Obj,
    out: &mut std::collections::BTreeSet<(usize, &'static str)>,
) {
    use control::config::schema::Ty;
    fn ty(t: &'static Ty, out: &mut std::collections::BTreeSet<(usize, &'static str)>) {
        match t {
            Ty::Obj(o) => schema_keys(o, out),
            Ty::List(t) | Ty::OneOrList(t) => ty(t, out),
            Ty::Either(ts) => ts.iter().for_each(|t| ty(t, out)),
            _ => {}
        }
    }
    for f in o.fields {
        if out.insert((o as *const _ as usize, f.key)) {
            ty(&f.ty, out);
        }
    }
}

/// Walks `doc` along the schema: every leaf's JSON pointer and its type;
/// and the (mapping, key) pairs seen.
fn leaves(
    doc: &Value,
    t: &'static control::config::schema::Ty,
    ptr: String,
    out: &mut Vec<(String, &'static control::config::schema::Ty)>,
    seen: &mut std::collections::BTreeSet<(usize, &'static str)>,
) {
    use control::config::schema::Ty;
    match (t, doc) {
        (Ty::Obj(o), Value::Object(m)) => {
            for (k, v) in m {
                let f = o.fields.iter().find(|f| f.key == k).expect("a schema key");
                seen.insert((*o as *const _ as usize, f.key));
                leaves(v, &f.ty, format!("{ptr}/{k}"), out, seen);
            }
        }
        (Ty::List(t) | Ty::OneOrList(t), Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, t, format!("{ptr}/{i}"), out, seen);
            }
        }
        (Ty::OneOrList(t), v) => leaves(v, t, ptr, out, seen),
        (Ty::Either(ts), v)
            if ts
                .iter()
                .any(|t| matches!(t, Ty::Obj(_) | Ty::List(_) | Ty::OneOrList(_)))
                && (v.is_array() || v.is_object()) =>
        {
            let t = ts
                .iter()
                .find(|t| {
                    matches!(
                        (t, v),
                        (Ty::OneOrList(_) | Ty::List(_), _) | (Ty::Obj(_), Value::Object(_))
                    )
                })
                .expect("a list type");
            leaves(v, t, ptr, out, seen)
        }
        _ => out.push((ptr, t)),
    }
}

/// The decoder's field path of a JSON pointer: `/filter/input/rules/0`
/// is `filter.input.rules[0]`.
fn field_path(ptr: &str) -> String {
    let mut s = String::new();
    for part in ptr.split('/').skip(1) {
        if part.parse::<usize>().is_ok() {
            s.push_str(&format!("[{part}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(part);
        }
    }
    s
}

/// Values of a leaf type the schema accepts, and values it refuses.
fn samples(t: &control::config::schema::Ty) -> (Vec<Value>, Vec<Value>) {
    use control::config::schema::Ty;
    match t {
        Ty::Int(lo, hi) => (
            vec![Value::from(*lo), Value::from(*hi)],
            vec![
                Value::from(*lo as i64 - 1),
                Value::from(hi + 1),
                serde_json::json!({ "x": 1 }),
            ],
        ),
        Ty::IntIn(v) => (
            v.iter().map(|n| Value::from(*n)).collect(),
            vec![
                Value::from(v[0] - 1),
                Value::from(v[0] + 1),
                Value::from(v[v.len() - 1] * 2),
            ],
        ),
        Ty::Bool => (
            vec![],
            vec![
                Value::from("yes"),
                Value::from(1),
                serde_json::json!([true]),
            ],
        ),
        Ty::Words(w) => (
            w.iter().map(|w| Value::from(*w)).collect(),
            vec![
                Value::from(format!("{}x", w[0])),
                serde_json::json!({ "x": 1 }),
            ],
        ),
        Ty::Named(t) => (
            t.iter().map(|(n, _)| Value::from(*n)).collect(),
            vec![
                Value::from(format!("{}x", t[0].0)),
                serde_json::json!({ "x": 1 }),
            ],
        ),
        Ty::Either(ts) => {
            let (mut good, bad) = (Vec::new(), vec![serde_json::json!({ "x": 1 })]);
            for t in ts.iter() {
                good.extend(samples(t).0);
            }
            (good, bad)
        }
        Ty::Text(_) => (vec![], vec![serde_json::json!({ "x": 1 })]),
        Ty::List(_) | Ty::OneOrList(_) | Ty::Obj(_) => (vec![], vec![]),
    }
}

/// The schema's words and ranges are the decoder's: at every leaf of a
/// config holding every key, each word and both ends of each range the
/// schema offers pass the decoder (or fail it elsewhere, for a rule that
/// then contradicts itself), and values just outside, other words and
/// values of the wrong type fail both, at that leaf.
#[test]
fn the_schema_s_words_and_ranges_are_the_decoder_s() {
    use control::config::schema::{Ty, TOP};
    let v = code_validator();
    let full = yaml_json(FULL);
    let decode = |doc: &Value| {
        Config::from_str(
            &serde_json::to_string_pretty(doc).unwrap(),
            Path::new("t.json"),
        )
    };
    decode(&full).unwrap_or_else(|e| panic!("the full config: {e}"));
    assert!(errors(&v, &full).is_empty(), "{:#?}", errors(&v, &full));

    static TOP_TY: Ty = Ty::Obj(&TOP);
    let (mut out, mut seen) = (Vec::new(), Default::default());
    leaves(&full, &TOP_TY, String::new(), &mut out, &mut seen);
    let mut all = Default::default();
    schema_keys(&TOP, &mut all);
    let missing: Vec<_> = all.difference(&seen).map(|(_, k)| *k).collect();
    assert!(missing.is_empty(), "FULL lacks the schema keys {missing:?}");

    let mut checked = 0;
    for (ptr, t) in &out {
        let (good, bad) = samples(t);
        let path = field_path(ptr);
        for g in good {
            let mut doc = full.clone();
            *doc.pointer_mut(ptr).unwrap() = g.clone();
            assert!(
                errors(&v, &doc).is_empty(),
                "the schema refuses {ptr} = {g}"
            );
            if let Err(e) = decode(&doc) {
                assert_ne!(e.path, path, "the decoder refuses {ptr} = {g}: {e}");
            }
            checked += 1;
        }
        for b in bad {
            let mut doc = full.clone();
            *doc.pointer_mut(ptr).unwrap() = b.clone();
            assert!(!errors(&v, &doc).is_empty(), "the schema takes {ptr} = {b}");
            let e = decode(&doc).expect_err(&format!("the decoder takes {ptr} = {b}"));
            assert!(e.path.starts_with(&path), "{ptr} = {b}: {e}");
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} values");
}
