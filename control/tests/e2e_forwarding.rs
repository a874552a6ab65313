//! routerd end to end (root): client - router - server namespaces joined by
//! veth pairs, routerd run in the router namespace as an operator runs it,
//! real traffic from the client's and server's kernels.
//!
//! Checks: ping with the TTL one lower, a verified TCP transfer of 12 MiB,
//! UDP, transit untracked (no connection entries), kernel forwarding off in
//! the router namespace, the kernel addresses taken off and put back, no
//! frame lost from the books after 100 000 packets, no XDP program left
//! after SIGKILL and a new routerd working right after, and one clear line
//! for each start-up error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{RouterdProc, Topology, SERVER_IP, SINK_IP};

use lab::require_root;

fn routerd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_routerd"))
}

fn transit_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml")
}

/// The transit config with `workers: [1]` replaced, written next to the
/// test's temporary files.
fn config_with_workers(tag: &str, workers: &str) -> PathBuf {
    let text = std::fs::read_to_string(transit_config()).expect("read the transit config");
    assert!(text.contains("workers: [1]"), "the transit config changed");
    let text = text.replace("workers: [1]", &format!("workers: {workers}"));
    let path = std::env::temp_dir().join(format!("e2e-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("write a config");
    path
}

fn start(t: &Topology, config: &Path) -> RouterdProc {
    RouterdProc::spawn_ready(routerd(), &[], &t.rtr, config)
}

fn kernel_addrs(t: &Topology, dev: &str) -> String {
    t.lab
        .exec(&t.rtr, &["ip", "-4", "-o", "addr", "show", "dev", dev])
        .expect("ip addr show")
}

#[test]
fn routerd_forwards_ping_tcp_and_udp_untracked_without_losing_frames() {
    require_root();
    let t = Topology::build("e2ef").expect("build the lab");
    assert_eq!(
        t.lab.sysctl(&t.rtr, "net.ipv4.ip_forward").unwrap(),
        "0",
        "kernel forwarding must be off in the router namespace"
    );
    assert!(kernel_addrs(&t, "r0").contains("198.18.0.1/24"));

    let mut r = start(&t, &transit_config());
    // While routerd runs the kernel has no address on the ports.
    assert!(
        !kernel_addrs(&t, "r0").contains("inet") && !kernel_addrs(&t, "r1").contains("inet"),
        "routerd left kernel addresses on its ports"
    );
    assert!(t.router_has_xdp().unwrap(), "no XDP program on the ports");

    let p = t.ping(SERVER_IP, 5).expect("ping");
    assert_eq!(p.received, 5, "ping through routerd:\n{}", p.text);
    assert!(
        p.ttls.iter().all(|&ttl| ttl == 63),
        "the server's replies (sent with TTL 64) must arrive with 63:\n{}",
        p.text
    );

    let tcp = lab::tcp_transfer(&t, 12 << 20, 5001, Duration::from_secs(60)).expect("TCP transfer");
    assert_eq!(tcp.received, 12 << 20);
    assert!(tcp.verified, "TCP bytes differ end to end: {tcp:?}");

    let udp = lab::udp_exchange(&t, 1000, 512, 5002).expect("UDP");
    eprintln!("{udp:?}");
    assert_eq!(udp.corrupt, 0, "{udp:?}");
    assert!(udp.received >= 950, "UDP through routerd: {udp:?}");

    // A long-ish run for the frame books: 130 000 datagrams, paced so that
    // even a debug build keeps up with most of them, at most 20 s.
    let pace = Some((32, Duration::from_micros(200)));
    let (sent, _) = lab::udp_send(&t, SINK_IP, 18, 20.0, 130_000, None, pace).expect("flood");
    assert_eq!(sent, 130_000);

    let status = r.terminate(Duration::from_secs(10)).expect("routerd stops");
    assert!(
        status.success(),
        "routerd exit: {status}\n{}",
        r.log().join("\n")
    );
    let log = r.log().join("\n");
    assert!(log.contains("what the router counted"), "{log}");
    let st = r.final_stats().expect("routerd's counters");
    eprintln!("{}", st.render());

    // Only routerd can have forwarded: kernel forwarding was off throughout.
    assert_eq!(t.lab.sysctl(&t.rtr, "net.ipv4.ip_forward").unwrap(), "0");
    let wan = &st.interfaces[0];
    assert!(wan.rx_packets >= 100_000 + 5, "{st:?}");
    assert!(st.forwarded >= 100_000, "{st:?}");
    // Transit is untracked: no connection entry for any of it.
    assert!(st.untracked >= 100_000, "{st:?}");
    assert_eq!(st.tracked, 0, "{st:?}");
    assert_eq!(st.conntrack_entries, 0, "{st:?}");
    for w in &st.workers {
        assert!(
            w.census.balanced && w.census.held == 0 && w.census.tx == 0,
            "frames lost from the books: {:?}",
            w.census
        );
        assert_eq!(w.census.total, 16384);
    }

    // At exit the kernel gets its addresses and routes back, XDP is gone.
    assert!(kernel_addrs(&t, "r0").contains("198.18.0.1/24"));
    assert!(kernel_addrs(&t, "r1").contains("198.19.0.1/24"));
    let routes = t.lab.exec(&t.rtr, &["ip", "-4", "route"]).unwrap();
    assert!(routes.contains("203.0.113.0/24 via 198.19.0.2"), "{routes}");
    assert!(t.router_xdp_gone_within(Duration::from_secs(2)).unwrap());
}

#[test]
fn after_sigkill_no_xdp_program_is_left_and_a_new_routerd_works() {
    require_root();
    let t = Topology::build("e2ek").expect("build the lab");
    let mut r = start(&t, &transit_config());
    let p = t.ping(SERVER_IP, 3).expect("ping");
    assert_eq!(p.received, 3, "{}", p.text);
    r.kill().expect("SIGKILL routerd");

    // The bpf_link goes with the process; give the kernel a bounded moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.router_has_xdp().unwrap() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let links = t.lab.exec(&t.rtr, &["ip", "link", "show"]).unwrap();
    assert!(!links.contains("xdp"), "XDP left after SIGKILL:\n{links}");

    // Right away: the sockets' queues may still be busy for a moment.
    let mut r2 = start(&t, &transit_config());
    let p = t.ping(SERVER_IP, 5).expect("ping");
    assert!(
        p.received >= 4 && p.ttls.iter().all(|&ttl| ttl == 63),
        "the new routerd does not forward:\n{}",
        p.text
    );
    let st = r2.terminate(Duration::from_secs(10)).expect("stops");
    assert!(st.success());
}

/// Runs routerd in `ns` and expects exit status 1 with one stderr line
/// containing `want`.
fn expect_error(t: &Topology, config: &Path, want: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", &t.rtr])
        .arg(routerd())
        .arg("--config")
        .arg(config)
        .output()
        .expect("run routerd");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("routerd: "))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(line.contains(want), "{line:?} lacks {want:?}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("routerd: ")).count(),
        1,
        "{err}"
    );
}

#[test]
fn start_up_errors_are_one_line_naming_the_fix() {
    require_root();
    let t = Topology::build("e2ee").expect("build the lab");

    let two = config_with_workers("q", "[0, 1]");
    // One queue per veth, two workers: refused before anything is
    // attached, with the way to add queues.
    expect_error(&t, &two, "r0: 1 receive queue(s) for 2 workers");
    expect_error(&t, &two, "numrxqueues 2 numtxqueues 2");
    let _ = std::fs::remove_file(&two);

    // Zero-copy asked for where the driver has none (veth).
    let text = std::fs::read_to_string(transit_config()).expect("read the transit config");
    let zc = std::env::temp_dir().join(format!("e2e-zc-{}.yaml", std::process::id()));
    std::fs::write(
        &zc,
        text.replace("burst: 64", "burst: 64\n  xdp_bind: zerocopy"),
    )
    .expect("write a config");
    expect_error(&t, &zc, "r0: zero-copy refused by the driver");
    expect_error(&t, &zc, "dataplane.xdp_bind: auto or copy");
    let _ = std::fs::remove_file(&zc);

    let far = config_with_workers("c", "[4000]");
    expect_error(&t, &far, "core 4000 does not exist");
    let _ = std::fs::remove_file(&far);

    // A second routerd on the same ports: the first one's XDP holds them.
    let mut r = start(&t, &transit_config());
    expect_error(&t, &transit_config(), "XDP attach refused");
    let p = t.ping(SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2, "the first routerd stopped forwarding");
    assert!(r.terminate(Duration::from_secs(10)).unwrap().success());

    // Nothing was changed by the failed starts: addresses are all there.
    assert!(kernel_addrs(&t, "r0").contains("198.18.0.1/24"));

    let empty = t.lab.namespaces()[0].clone(); // the client: no r0 there
    let out = Command::new("ip")
        .args(["netns", "exec", &empty])
        .arg(routerd())
        .arg("--config")
        .arg(transit_config())
        .output()
        .expect("run routerd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err.trim(),
        "routerd: no such device r0: create it or fix interfaces[].device"
    );
}

/// `dataplane.busy_poll: true`: every AF_XDP socket gets preferred busy
/// polling, the log says whether the kernel gave it a NAPI id (veth since
/// 6.13 does not: then it says busy polling has no effect there), the
/// ports' NAPI settings change while routerd runs and are put back at
/// exit, and forwarding works.
#[test]
fn busy_poll_sets_the_sockets_and_the_napi_settings_and_puts_them_back() {
    require_root();
    let t = Topology::build("e2eb").expect("build the lab");
    let text = std::fs::read_to_string(transit_config()).expect("read the transit config");
    assert!(text.contains("burst: 64"), "the transit config changed");
    let text = text.replace("burst: 64", "burst: 64\n  busy_poll: true");
    let config = std::env::temp_dir().join(format!("e2e-busy-{}.yaml", std::process::id()));
    std::fs::write(&config, text).expect("write a config");
    let napi = |dev: &str| {
        t.lab
            .exec(
                &t.rtr,
                &[
                    "sh",
                    "-c",
                    &format!(
                        "read a < /sys/class/net/{dev}/napi_defer_hard_irqs; \
                         read b < /sys/class/net/{dev}/gro_flush_timeout; echo $a $b"
                    ),
                ],
            )
            .expect("read the NAPI settings")
            .trim()
            .to_string()
    };
    let before = napi("r0");
    let mut r = start(&t, &config);
    let _ = std::fs::remove_file(&config);
    assert_eq!(napi("r0"), "2 200000");
    assert_eq!(napi("r1"), "2 200000");
    let log = r.log().join("\n");
    for dev in ["r0", "r1"] {
        let about = format!("AF_XDP socket {dev} queue 0: ");
        assert!(
            log.lines().any(|l| l.contains(&about)
                && (l.contains("preferred busy polling on NAPI")
                    || l.contains("no NAPI id (veth since 6.13): it has no effect here"))),
            "{log}"
        );
    }
    let p = t.ping(SERVER_IP, 3).expect("ping");
    assert_eq!(p.received, 3, "{}", p.text);
    let status = r.terminate(Duration::from_secs(10)).expect("routerd stops");
    assert!(status.success(), "{}", r.log().join("\n"));
    assert_eq!(napi("r0"), before, "the NAPI settings are put back");
}
