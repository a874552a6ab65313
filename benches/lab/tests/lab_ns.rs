//! The lab's own tools on a veth pair between two namespaces (root): TX
//! checksum offload and channel counts through SIOCETHTOOL, sysctls under
//! /proc/sys, interface counters, ICMP echo from a raw socket (replies,
//! and time exceeded from a router in between). Namespaces are removed on
//! exit, also when a test fails.

use std::time::Duration;

use lab::{Lab, PingOptions};

#[test]
fn ethtool_sysctl_counters_and_ping_work_with_nothing_but_ip() {
    lab::require_root();
    let mut lab = Lab::new("labt").expect("lab");
    let a = lab.add_ns("a").expect("namespace a");
    let r = lab.add_ns("r").expect("namespace r");
    let b = lab.add_ns("b").expect("namespace b");
    lab.veth(&a, "a0", &r, "ra").expect("veth a-r");
    lab.veth(&r, "rb", &b, "b0").expect("veth r-b");
    for (ns, cmds) in [
        (
            &a,
            vec![
                vec!["ip", "addr", "add", "198.18.0.2/24", "dev", "a0"],
                vec!["ip", "route", "add", "default", "via", "198.18.0.1"],
            ],
        ),
        (
            &r,
            vec![
                vec!["ip", "addr", "add", "198.18.0.1/24", "dev", "ra"],
                vec!["ip", "addr", "add", "198.19.0.1/24", "dev", "rb"],
            ],
        ),
        (
            &b,
            vec![
                vec!["ip", "addr", "add", "198.19.0.2/24", "dev", "b0"],
                vec!["ip", "route", "add", "default", "via", "198.19.0.1"],
            ],
        ),
    ] {
        for cmd in cmds {
            lab.exec(ns, &cmd).expect("address set-up");
        }
    }

    // SIOCETHTOOL in the namespace of the thread.
    assert!(
        lab.tx_checksum(&a, "a0").expect("read offload"),
        "veth default"
    );
    lab.tx_checksum_off(&a, "a0").expect("offload off");
    assert!(!lab.tx_checksum(&a, "a0").expect("read offload"));
    let a_name = a.clone();
    let chans = lab::netns::run_in(&a_name, || {
        dataplane::xsk::ethtool::channels("a0").map_err(|err| lab::LabError::Io {
            what: "channels".into(),
            err,
        })
    })
    .expect("channel counts");
    assert_eq!(chans, (1, 1, 0), "veth: one rx and one tx queue");
    assert!(
        lab.tx_checksum(&b, "a0").is_err(),
        "a0 is not in namespace b"
    );

    // Sysctls are per namespace.
    assert_eq!(lab.sysctl(&r, "net.ipv4.ip_forward").unwrap(), "0");
    lab.set_sysctl(&r, "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(lab.sysctl(&r, "net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(lab.sysctl(&a, "net.ipv4.ip_forward").unwrap(), "0");
    assert_eq!(
        lab.sysctl(&a, "net.ipv6.conf.default.disable_ipv6")
            .unwrap(),
        "1"
    );

    // Echo through the router: TTL one lower; TTL 1 dies at the router.
    let before = lab.if_stat(&b, "b0", "rx_packets").expect("counter");
    let opts = PingOptions {
        interval: Duration::from_millis(50),
        ..PingOptions::count(5)
    };
    let p = lab::ping_in(&a, "198.19.0.2", &opts).expect("ping");
    assert_eq!((p.sent, p.received), (5, 5), "{}", p.text);
    assert!(p.ttls.iter().all(|&t| t == 63), "{}", p.text);
    let after = lab.if_stat(&b, "b0", "rx_packets").expect("counter");
    assert!(after >= before + 5, "{before} -> {after}");
    let p = lab::ping_in(
        &a,
        "198.19.0.2",
        &PingOptions {
            ttl: Some(1),
            ..PingOptions::count(1)
        },
    )
    .expect("ping");
    assert_eq!(p.received, 0, "{}", p.text);
    assert!(
        p.errors
            .iter()
            .any(|e| e.from.to_string() == "198.18.0.1" && e.describe() == "Time to live exceeded"),
        "{}",
        p.text
    );
    // Nothing answers: bounded by count * interval + wait.
    lab.set_sysctl(&r, "net.ipv4.ip_forward", "0").unwrap();
    let started = std::time::Instant::now();
    let p = lab::ping_in(
        &a,
        "198.19.0.2",
        &PingOptions {
            wait: Duration::from_millis(300),
            ..PingOptions::count(2)
        },
    )
    .expect("ping");
    assert_eq!(p.received, 0, "{}", p.text);
    assert!(started.elapsed() < Duration::from_secs(2));
}
