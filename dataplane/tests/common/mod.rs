//! The namespace lab of the root tests, from the `lab` crate
//! (`benches/lab`), with each step panicking on failure: named namespaces
//! joined by veth pairs, unique per test process, removed on drop (also
//! when the test panics). Nothing but `ip` is run.
//!
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::process::Output;

pub use lab::ns::mac_str;

/// Namespaces and veth pairs made for one test.
#[derive(Debug)]
pub struct Lab(lab::Lab);

fn ok<T>(what: &str, r: Result<T, lab::LabError>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

impl Lab {
    /// A lab whose namespaces are named `PREFIX<pid>-<name>`. Requires root
    /// and `ip` (one line saying which is missing otherwise).
    pub fn new(prefix: &str) -> Lab {
        lab::require_root();
        Lab(ok("lab", lab::Lab::new(prefix)))
    }

    /// Creates namespace `<tag>-<short>` with loopback up; returns its name.
    pub fn add_ns(&mut self, short: &str) -> String {
        ok("add a namespace", self.0.add_ns(short))
    }

    /// A veth pair `if1` (in `ns1`) <-> `if2` (in `ns2`), both up.
    pub fn veth(&self, ns1: &str, if1: &str, ns2: &str, if2: &str) {
        ok("veth pair", self.0.veth(ns1, if1, ns2, if2));
    }

    /// Runs `cmd` (`ip ...`) inside `ns`; panics with its output if it
    /// fails. Returns its standard output.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        ok("command", self.0.exec(ns, cmd))
    }

    /// Runs `cmd` inside `ns` and returns whatever happened.
    pub fn try_exec(&self, ns: &str, cmd: &[&str]) -> Output {
        ok("command", self.0.try_exec(ns, cmd))
    }

    /// TX checksum offload off (`SIOCETHTOOL`): veth endpoints must not
    /// leave TCP/UDP checksums to an offload that forwarding through
    /// AF_XDP skips.
    pub fn tx_offload_off(&self, ns: &str, ifname: &str) {
        ok(
            "TX checksum offload off",
            self.0.tx_checksum_off(ns, ifname),
        );
    }

    /// The MAC address of `ifname` in `ns`.
    pub fn mac(&self, ns: &str, ifname: &str) -> [u8; 6] {
        ok("MAC address", self.0.mac(ns, ifname))
    }

    /// `ip link show dev IF` in `ns`.
    pub fn link_show(&self, ns: &str, ifname: &str) -> String {
        ok("ip link show", self.0.link_show(ns, ifname))
    }

    /// `ping -c COUNT -i INTERVAL -W 2 DST` from `ns`.
    pub fn ping(
        &self,
        ns: &str,
        dst: &str,
        count: u32,
        interval: std::time::Duration,
    ) -> lab::PingResult {
        let opts = lab::PingOptions {
            interval,
            ..lab::PingOptions::count(count)
        };
        ok("ping", lab::ping_in(ns, dst, &opts))
    }
}
