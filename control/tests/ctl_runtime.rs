//! `routerctl stats runtime` (text, `--json`, `--clear`) against a control
//! socket served by a fake routerd whose runtime accounting is known
//! (`ctl_support::fake_runtime`: 1000 packets, 1 GHz, 1,000,000 cycles).

mod ctl_support;

use control::ctl::server::serve;
use ctl_support::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    let s = ok_stdout(out);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The cells of the first line of `out` after `after` that starts with
/// `first`.
fn row(out: &str, after: &str, first: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.contains(after))
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == first))
        .unwrap_or_else(|| panic!("no row {first} after {after}:\n{out}"))
}

#[test]
fn stats_runtime_shows_cycles_per_packet_by_phase_and_clears() {
    let (sock, dir) = temp_socket("runtime");
    let fake = Fake::transit();
    fake.feed(TRANSIT_UDP);
    let _srv = serve(&sock, fake).expect("serve");

    let j = json(&routerctl(&sock, &["stats", "runtime", "--json"]));
    assert_eq!(j["tsc_hz"], 1_000_000_000u64);
    let w = &j["workers"][0];
    assert_eq!(
        (w["worker"].as_u64(), w["core"].as_u64()),
        (Some(0), Some(1))
    );
    for (k, v) in [("loops", 100), ("busy_loops", 40), ("packets", 1000)] {
        assert_eq!(w[k], v, "{k}: {w}");
        assert_eq!(j["total"][k], v, "total {k}: {j}");
    }
    assert_eq!(w["total_cycles"], 1_000_000);
    let phases = [
        "rx",
        "pipeline",
        "tx",
        "host",
        "handoff",
        "housekeeping",
        "idle",
    ];
    let sum: u64 = phases
        .iter()
        .map(|p| {
            w["cycles"][p]
                .as_u64()
                .unwrap_or_else(|| panic!("{p}: {w}"))
        })
        .sum();
    assert_eq!(sum, 1_000_000);
    assert!(j["total"].get("worker").is_none(), "{j}");

    let out = ok_stdout(&routerctl(&sock, &["stats", "runtime"]));
    assert!(out.contains("TSC 1.000 GHz"), "{out}");
    assert!(
        out.contains("worker 0 (core 1): 0.001 s, 100 loops, 40 busy (40.0%), 1000 packets, 25.0 packets per busy loop"),
        "{out}"
    );
    // phase, cycles, share, cycles/pkt, ns/pkt (1 GHz: ns = cycles).
    assert_eq!(
        row(&out, "worker 0", "pipeline"),
        ["pipeline", "10000", "1.0%", "10.0", "10.0"]
    );
    assert_eq!(
        row(&out, "worker 0", "tx"),
        ["tx", "4000", "0.4%", "4.0", "4.0"]
    );
    assert_eq!(
        row(&out, "worker 0", "busy"),
        ["busy", "19000", "1.9%", "19.0", "19.0"]
    );
    assert_eq!(
        row(&out, "worker 0", "total"),
        ["total", "1000000", "100.0%", "1000.0", "1000.0"]
    );
    assert!(
        !out.contains("all 1 workers"),
        "no sum of one worker:\n{out}"
    );

    let cleared = ok_stdout(&routerctl(&sock, &["stats", "runtime", "--clear"]));
    assert_eq!(cleared.trim(), "runtime accounting cleared");
    let j = json(&routerctl(&sock, &["stats", "runtime", "--json"]));
    for k in ["loops", "busy_loops", "packets", "total_cycles"] {
        assert_eq!(j["workers"][0][k], 0, "{k}: {j}");
        assert_eq!(j["total"][k], 0, "{k}: {j}");
    }
    let out = ok_stdout(&routerctl(&sock, &["stats", "runtime"]));
    assert_eq!(row(&out, "worker 0", "rx"), ["rx", "0", "-", "-", "-"]);
    // Clearing the runtime leaves the other counters alone.
    let s = json(&routerctl(&sock, &["stats", "--json"]));
    assert_eq!(s["interfaces"]["wan"]["rx_packets"], 1);
    let _ = std::fs::remove_dir_all(dir);
}
