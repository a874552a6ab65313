//! The short soak (root, namespaces of its own): 25 s of mixed load through
//! routerd (verified TCP transfers, a UDP stream, echo sessions with a
//! service on the router through the host path, short transit UDP flows
//! from changing ports, SYNs from changing ports to the router that each
//! make a tracked entry expiring within 10 s), memory sampled every second.
//! After a 10 s warm-up resident memory must stay within 1 MiB; at the end
//! no UMEM frame is lost and the counters add up per port and in total
//! (`benches/lab/src/soak.rs` states the identities). The ten-minute run is
//! `cargo run --release -p lab --bin soak`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use lab::soak::{self, SoakOptions};
use lab::{RouterdProc, Topology};

use lab::require_root;

#[test]
fn a_short_soak_keeps_memory_flat_loses_no_frame_and_the_counters_add_up() {
    require_root();
    let t = Topology::build("e2eS").expect("build the lab");
    let config = soak::soak_config("e2e", 16384).expect("soak config");
    let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
    let mut r = RouterdProc::spawn(routerd, &[], &t.rtr, &config).expect("spawn routerd");
    r.wait_ready(Duration::from_secs(20))
        .expect("routerd ready");
    let opts = SoakOptions {
        secs: 25.0,
        warmup_secs: 10.0,
        sample_secs: 1.0,
        rss_slack_kib: 1024,
        churn_per_sec: 200,
        syn_per_sec: 100,
    };
    let report = soak::soak(&t, &mut r, &opts, &AtomicBool::new(false));
    let _ = std::fs::remove_file(&config);
    let report = report.expect("soak ran");
    let text = report.render();
    eprintln!("{text}");
    assert_eq!(report.problems(), Vec::<String>::new(), "{text}");

    // The load did what it says: churn and tracked flows came and went.
    let st = &report.stats;
    assert!(report.churn_flows >= 1000, "{text}");
    assert!(report.syns >= 500, "{text}");
    assert!(st.tracked >= report.syns * 9 / 10, "{text}");
    assert!(st.untracked >= 2 * report.churn_flows, "{text}");
    // Entries expire within 10 s: far fewer are left than were made.
    assert!(
        st.conntrack_entries < (report.syns + report.host_verified) / 2,
        "{text}"
    );
    assert!(report.host_verified >= 100, "{text}");
    assert!(report.tcp_verified >= 1, "{text}");
}
