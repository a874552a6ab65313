//! The netlink loader of `lab::nft` (root): the export of
//! `configs/transit-router.yaml` goes into a namespace's kernel without the
//! `nft` program, its rules count what a ping does, and the connection
//! table is read and flushed over ctnetlink.

use std::path::Path;

use control::config::Config;
use lab::netns::run_in;
use lab::nft::{sum_by_tag, table_from_ruleset, Nft, POLICY_TAG};
use lab::{Lab, PingOptions};

#[test]
fn the_transit_ruleset_loads_counts_a_ping_and_tracks_it() {
    lab::require_root();
    let mut lab = Lab::new("nftl").expect("lab");
    let a = lab.add_ns("a").expect("namespace a");
    let r = lab.add_ns("r").expect("namespace r");
    lab.veth(&a, "a0", &r, "r0").expect("veth");
    lab.exec(&a, &["ip", "addr", "add", "198.18.0.2/24", "dev", "a0"])
        .expect("address a");
    lab.exec(&r, &["ip", "addr", "add", "198.18.0.1/24", "dev", "r0"])
        .expect("address r");

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/transit-router.yaml");
    let cfg = Config::load(&path).expect("config");
    let rs = control::nft::ruleset(&cfg.tables_spec());
    let table = table_from_ruleset("routerd", &rs, true);
    // The forward rule's port set { 23, 2323 } is two kernel rules.
    assert_eq!(
        table.rules.iter().filter(|x| x.chain == "forward").count(),
        3
    );
    let mut nft = run_in(&r, Nft::open).expect("netlink socket in r");
    nft.replace(&table).expect("load the ruleset");
    // Loading again replaces it (counters start from zero).
    nft.replace(&table).expect("reload the ruleset");

    let before = sum_by_tag(&nft.counters().expect("counters"));
    let key = |chain: &str, tag: &str| ("routerd".to_string(), chain.to_string(), tag.to_string());
    for (chain, tag) in [
        ("raw_prerouting", "rule 1"),
        ("raw_prerouting", "rule 2"),
        ("input", "rule 1"),
        ("input", "rule 3"),
        ("input", POLICY_TAG),
        ("forward", "rule 1"),
        ("output", POLICY_TAG),
    ] {
        assert_eq!(
            before.get(&key(chain, tag)),
            Some(&0),
            "{chain} {tag}: {before:?}"
        );
    }

    let res = lab::ping_in(&a, "198.18.0.1", &PingOptions::count(2)).expect("ping");
    assert_eq!(res.received, 2, "{}", res.text);
    let after = sum_by_tag(&nft.counters().expect("counters"));
    // The requests: tracked by raw rule 1 (local), accepted by the ping
    // rule (rule 2; rule 1 takes nothing: the first is new, the second
    // is established and taken by rule 1).
    assert_eq!(after[&key("raw_prerouting", "rule 1")], 2, "{after:?}");
    assert_eq!(after[&key("raw_prerouting", "rule 2")], 0);
    assert_eq!(
        after[&key("input", "rule 2")] + after[&key("input", "rule 1")],
        2
    );
    assert_eq!(after[&key("input", "rule 2")], 1, "{after:?}");
    // The replies leave by the output policy.
    assert_eq!(after[&key("output", POLICY_TAG)], 2, "{after:?}");

    let ct = nft.conntrack().expect("conntrack dump");
    assert_eq!(ct.len(), 1, "{ct:?}");
    assert_eq!((ct[0].proto, ct[0].tcp_state), (1, None));
    nft.flush_conntrack().expect("flush");
    assert!(nft.conntrack().expect("conntrack dump").is_empty());
    nft.destroy("routerd").expect("destroy");
    assert!(nft
        .counters()
        .expect("counters")
        .iter()
        .all(|c| c.table != "routerd"));
}
