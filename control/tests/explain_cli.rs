//! `routerctl explain` as an operator runs it: one JSON object per packet
//! with `--json`, stage lines without, and one clear line on stderr with
//! exit 1 when the packet, the interface or the config is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
}

fn explain(config: &Path, json: bool, packets: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_routerctl"));
    c.arg("explain").arg("--config").arg(config);
    if json {
        c.arg("--json");
    }
    c.args(packets).output().expect("run routerctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parse `--json` output: exit 0, nothing on stderr, one object a line.
fn json_lines(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The one line on stderr of a failed run (exit 1, nothing on stdout).
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    lines[0].to_string()
}

const SSH: [&str; 3] = [
    "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S",
    "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA",
    "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=A",
];

#[test]
fn json_gives_one_object_per_packet_in_order() {
    let out = explain(&config("transit-router.yaml"), true, &SSH);
    let v = json_lines(&out);
    assert_eq!(v.len(), 3, "{}", text(&out.stdout));
    for (j, p) in v.iter().zip(SSH) {
        assert_eq!(j["packet"], json!(p));
        for key in [
            "ct_state",
            "chain",
            "verdict",
            "out",
            "drop_reason",
            "raw_rule",
            "raw_action",
            "rule",
            "ct_confirmed",
            "conntrack_entries",
            "route",
            "reply",
        ] {
            assert!(j.get(key).is_some(), "no `{key}` in {j}");
        }
    }
    let states: Vec<_> = v.iter().map(|j| j["ct_state"].clone()).collect();
    assert_eq!(
        states,
        [json!("new"), json!("established"), json!("established")]
    );
    let rules: Vec<_> = v.iter().map(|j| j["rule"].clone()).collect();
    assert_eq!(rules, [json!(3), Value::Null, json!(1)]);
    let outs: Vec<_> = v.iter().map(|j| j["out"].clone()).collect();
    assert_eq!(outs, [json!("host"), json!("wan"), json!("host")]);
    let entries: Vec<_> = v.iter().map(|j| j["conntrack_entries"].clone()).collect();
    assert_eq!(entries, [json!(1), json!(1), json!(1)]);
    assert_eq!(v[0]["ct_confirmed"], json!(true));
    assert_eq!(v[2]["ct_confirmed"], json!(false));
}

#[test]
fn json_shows_drops_with_their_reason() {
    let out = explain(
        &config("transit-router.yaml"),
        true,
        &[
            "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:23 flags=S",
            "in=wan tcp 198.18.0.2:5000 > 198.19.0.2:23 flags=S",
            "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1",
            "in=wan udp 198.18.0.2:5000 > 203.0.113.9:53",
        ],
    );
    let v = json_lines(&out);
    assert_eq!(v.len(), 4);
    let pick = |j: &Value| {
        (
            j["ct_state"].clone(),
            j["chain"].clone(),
            j["verdict"].clone(),
            j["drop_reason"].clone(),
            j["out"].clone(),
        )
    };
    assert_eq!(
        pick(&v[0]),
        (
            json!("new"),
            json!("input"),
            json!("drop"),
            json!("filter_policy"),
            Value::Null
        )
    );
    assert_eq!(
        pick(&v[1]),
        (
            json!("untracked"),
            json!("forward"),
            json!("drop"),
            json!("filter_denied"),
            Value::Null
        )
    );
    assert_eq!(
        pick(&v[2]),
        (
            json!("untracked"),
            Value::Null,
            json!("drop"),
            json!("ip_ttl_expired"),
            Value::Null
        )
    );
    assert_eq!(
        v[2]["reply"],
        json!({ "kind": "icmp time-exceeded", "out": "lan" })
    );
    assert_eq!(
        pick(&v[3]),
        (
            json!("untracked"),
            json!("forward"),
            json!("accept"),
            Value::Null,
            json!("lan")
        )
    );
    assert!(v.iter().all(|j| j["conntrack_entries"] == json!(0)));
}

#[test]
fn json_webserver_keeps_web_out_of_the_table_and_ssh_in_it() {
    let mut packets: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "in=wan tcp 198.18.0.2:{} > 198.18.0.1:80 flags=S",
                40000 + i
            )
        })
        .collect();
    packets.push("in=host tcp 198.18.0.1:80 > 198.18.0.2:40000 flags=SA".into());
    packets.push("in=wan tcp 198.18.0.2:50000 > 198.18.0.1:22 flags=S".into());
    let refs: Vec<&str> = packets.iter().map(String::as_str).collect();
    let v = json_lines(&explain(&config("webserver.yaml"), true, &refs));
    assert_eq!(v.len(), 52);
    for j in &v[..51] {
        assert_eq!(j["ct_state"], json!("untracked"), "{j}");
        assert_eq!(j["raw_action"], json!("notrack"), "{j}");
        assert_eq!(j["verdict"], json!("accept"), "{j}");
        assert_eq!(j["conntrack_entries"], json!(0), "{j}");
    }
    assert_eq!(v[50]["out"], json!("wan"));
    let ssh = &v[51];
    assert_eq!(ssh["ct_state"], json!("new"));
    assert_eq!(ssh["rule"], json!(4));
    assert_eq!(ssh["ct_confirmed"], json!(true));
    assert_eq!(ssh["conntrack_entries"], json!(1));
}

#[test]
fn text_output_has_a_line_per_stage_and_the_table_size() {
    let out = explain(&config("transit-router.yaml"), false, &SSH[..2]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in [
        "packet 1: in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S\n",
        "  raw/prerouting   rule 1 (host traffic is tracked): accept -> tracked\n",
        "  conntrack        new\n",
        "  route            198.18.0.1: local\n",
        "  filter/input     rule 3 (ssh): accept\n",
        "  conntrack        entry created: tcp 198.18.0.2:40000 > 198.18.0.1:22 SYN_SENT, timeout 120s\n",
        "  result           accept -> host\n",
        "packet 2: in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA\n",
        "  raw/output       no rule matched -> tracked\n",
        "  conntrack        established (flow tcp 198.18.0.2:40000 > 198.18.0.1:22, SYN_RECV)\n",
        "  filter/output    policy: accept\n",
        "  neighbour        198.18.0.2 on wan (assumed resolved by ARP)\n",
        "  result           accept -> out wan (ttl 64)\n",
    ] {
        assert!(stdout.contains(want), "missing `{want}` in\n{stdout}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("connection table: 1 entr"), "{stdout}");
}

#[test]
fn a_bad_packet_is_one_error_line_and_exit_1() {
    let out = explain(
        &config("transit-router.yaml"),
        true,
        &[
            SSH[0],
            "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=X",
        ],
    );
    let line = one_error_line(&out);
    assert!(
        line.contains("in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=X"),
        "names the packet: {line}"
    );
    assert!(line.contains("`X` is not a TCP flag"), "says why: {line}");

    let out = explain(
        &config("transit-router.yaml"),
        false,
        &["tcp 198.18.0.2:40000 > 198.18.0.1:22"],
    );
    let line = one_error_line(&out);
    assert!(line.contains("must start with in=INTERFACE"), "{line}");
}

#[test]
fn a_packet_mixing_families_is_one_error_line() {
    let out = explain(
        &config("transit-router.yaml"),
        false,
        &["in=wan tcp 198.18.0.2:40000 > [2001:db8::1]:22 flags=S"],
    );
    let line = one_error_line(&out);
    assert!(
        line.contains("198.18.0.2 > 2001:db8::1 mixes IPv4 and IPv6"),
        "says why: {line}"
    );
}

#[test]
fn a_bad_config_is_one_located_line_and_exit_1() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explain_cli_bad.yaml");
    std::fs::write(
        &file,
        "interfaces:\n  - name: wan\n    device: r0\n    addresses: [198.18.0.1/24]\nroutes:\n  - to: default\n    via: 10.0.0.1\n",
    )
    .unwrap();
    let out = explain(&file, true, &[SSH[0]]);
    let line = one_error_line(&out);
    let prefix = format!("{}:7:10: routes[0].via: ", file.display());
    assert!(line.starts_with(&prefix), "want `{prefix}...`, got: {line}");
    assert!(line.contains("10.0.0.1"), "{line}");

    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explain_cli_missing.yaml");
    let out = explain(&missing, true, &[SSH[0]]);
    let line = one_error_line(&out);
    assert!(line.contains("explain_cli_missing.yaml"), "{line}");
    assert!(line.contains("cannot read the file"), "{line}");
}

#[test]
fn an_unknown_interface_is_a_clear_error() {
    let out = explain(
        &config("transit-router.yaml"),
        true,
        &["in=dmz tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S"],
    );
    let line = one_error_line(&out);
    assert!(line.contains("in=dmz is not an interface"), "{line}");
    assert!(line.contains("wan, lan"), "lists the interfaces: {line}");
}

#[test]
fn packets_are_required() {
    let out = explain(&config("transit-router.yaml"), true, &[]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("PACKETS"),
        "{}",
        text(&out.stderr)
    );
}
