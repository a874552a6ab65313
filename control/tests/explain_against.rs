//! `routerctl explain --config NEW --against OLD` on the two shipped
//! configs: it marks exactly the packets whose answers differ, where the
//! expected set comes from running `explain` on each config alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
}

fn routerctl(args: &[&str], packets: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(args)
        .args(packets)
        .output()
        .expect("run routerctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Web, SSH, ping, transit, telnet, an ICMP error about a web flow: the
/// two configs agree on some and not on others.
const PACKETS: &[&str] = &[
    "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:80 flags=S",
    "in=host tcp 198.18.0.1:80 > 198.18.0.2:40000 flags=SA",
    "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:80 flags=A",
    "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:22 flags=S",
    "in=host tcp 198.18.0.1:22 > 198.18.0.2:40001 flags=SA",
    "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request",
    "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53",
    "in=wan tcp 198.18.0.2:40002 > 198.19.0.2:23 flags=S",
    "in=wan tcp 198.18.0.2:40003 > 198.18.0.1:8080 flags=S",
];

/// What the README says `--against` compares: the verdict (and drop
/// reason), the chain, the rule (by its text), the output (and a reply),
/// the next hop and the connection state.
const COMPARED: &[&str] = &[
    "verdict",
    "drop_reason",
    "chain",
    "rule_text",
    "out",
    "reply",
    "route",
    "ct_state",
];

fn differs(a: &Value, b: &Value) -> bool {
    COMPARED.iter().any(|k| a[k] != b[k])
}

#[test]
fn against_marks_exactly_the_packets_whose_answers_differ() {
    let (old, new) = (config("transit-router.yaml"), config("webserver.yaml"));
    let (old_s, new_s) = (old.to_str().unwrap(), new.to_str().unwrap());
    let alone = |cfg: &str| {
        let out = routerctl(&["explain", "--json", "--config", cfg], PACKETS);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        json_lines(&out)
    };
    let (a, b) = (alone(old_s), alone(new_s));
    let expected: Vec<bool> = a.iter().zip(&b).map(|(x, y)| differs(x, y)).collect();
    assert!(
        expected.iter().any(|c| *c) && expected.iter().any(|c| !*c),
        "the packets must show both cases: {expected:?}"
    );

    let out = routerctl(
        &["explain", "--json", "--config", new_s, "--against", old_s],
        PACKETS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let both = json_lines(&out);
    assert_eq!(both.len(), PACKETS.len());
    for (i, j) in both.iter().enumerate() {
        assert_eq!(j["packet"], PACKETS[i]);
        assert_eq!(j["old"], a[i], "packet {}: the old answer", i + 1);
        assert_eq!(j["new"], b[i], "packet {}: the new answer", i + 1);
        assert_eq!(
            j["changed"],
            expected[i],
            "packet {}: {}",
            i + 1,
            PACKETS[i]
        );
        let fields = j["fields"].as_array().expect("fields");
        assert_eq!(fields.is_empty(), !expected[i], "{j}");
    }
    // The web SYN: dropped by the transit config's policy, accepted and
    // untracked by the web server's.
    let fields: Vec<&str> = both[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fields, ["verdict", "rule", "out", "state"]);

    // The text form marks the same packets, and counts them.
    let out = routerctl(&["explain", "--config", new_s, "--against", old_s], PACKETS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let heads: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("packet "))
        .collect();
    assert_eq!(heads.len(), PACKETS.len(), "{stdout}");
    for (i, h) in heads.iter().enumerate() {
        assert_eq!(h.contains("CHANGED"), expected[i], "{h}");
        assert_eq!(h.ends_with("  same"), !expected[i], "{h}");
    }
    let n = expected.iter().filter(|c| **c).count();
    assert!(
        stdout.contains(&format!("\n{n} of {} packets changed", PACKETS.len())),
        "{stdout}"
    );
    for tag in ["  old ", "  new "] {
        assert_eq!(
            stdout.matches(tag).count(),
            PACKETS.len(),
            "an {tag:?} line per packet: {stdout}"
        );
    }
}

#[test]
fn exit_code_says_whether_anything_changed() {
    let (old, new) = (config("transit-router.yaml"), config("webserver.yaml"));
    let (old_s, new_s) = (old.to_str().unwrap(), new.to_str().unwrap());
    let web = ["in=wan tcp 198.18.0.2:40000 > 198.18.0.1:80 flags=S"];
    let transit = ["in=lan udp 198.19.0.2:5353 > 203.0.113.9:53"];
    let code = |args: &[&str], p: &[&str]| routerctl(args, p).status.code();
    let with = [
        "explain",
        "--exit-code",
        "--config",
        new_s,
        "--against",
        old_s,
    ];
    assert_eq!(code(&with, &web), Some(1), "a changed answer");
    assert_eq!(code(&with, &transit), Some(0), "no changed answer");
    let without = ["explain", "--config", new_s, "--against", old_s];
    assert_eq!(code(&without, &web), Some(0), "without --exit-code");
    // An error is 2 with --exit-code, so that it is not read as "changed".
    let bad = [
        "explain",
        "--exit-code",
        "--config",
        new_s,
        "--against",
        "/nonexistent.yaml",
    ];
    let out = routerctl(&bad, &web);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("/nonexistent.yaml:0:0: cannot read the file"),
        "{}",
        text(&out.stderr)
    );
    // The same config against itself: nothing changes.
    let same = [
        "explain",
        "--exit-code",
        "--config",
        old_s,
        "--against",
        old_s,
    ];
    assert_eq!(code(&same, &web), Some(0));
}
