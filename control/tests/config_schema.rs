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
            "  umem_frames: 4096",
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
            "addresses: [198.18.0.1/24]",
            "addresses: [198.18.0.1]",
            "/interfaces/0/addresses",
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
