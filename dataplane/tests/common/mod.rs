//! A network-namespace lab for root tests: named namespaces joined by veth
//! pairs, built with `ip`, unique per test process, removed on drop (also
//! when the test panics).
//!
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The one message a root test gives when it cannot run.
const NEED_ROOT: &str =
    "these tests need root and network namespaces: run as root, e.g. sudo -E cargo test";

/// Panics with one clear message unless the process is root and `ip netns`
/// is usable.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    let ip_ok = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if euid != "0" || !ip_ok {
        panic!("{NEED_ROOT}");
    }
}

/// Fails with a clear message when a tool the lab needs is missing.
fn require_tool(tool: &str, package: &str, why: &str) {
    let found = Command::new(tool).arg("-V").output().is_ok();
    if !found {
        panic!("the lab needs `{tool}` to {why}: install it (apt-get install {package})");
    }
}

/// Namespaces and veth pairs made for one test.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// A lab whose namespaces are named `PREFIX<pid>-<name>`. Requires root.
    pub fn new(prefix: &str) -> Lab {
        require_root();
        Lab {
            tag: format!("{prefix}{}", std::process::id()),
            namespaces: Vec::new(),
        }
    }

    /// Creates namespace `<tag>-<short>` with loopback up; returns its name.
    pub fn add_ns(&mut self, short: &str) -> String {
        let name = format!("{}-{short}", self.tag);
        // A namespace left by a killed run with the same pid: start afresh.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        // No IPv6 chatter (router solicitations, MLD) on the test links.
        self.exec(
            &name,
            &[
                "sh",
                "-c",
                "[ ! -e /proc/sys/net/ipv6 ] || echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            ],
        );
        name
    }

    /// A veth pair `if1` (in `ns1`) <-> `if2` (in `ns2`), both up.
    pub fn veth(&self, ns1: &str, if1: &str, ns2: &str, if2: &str) {
        run(&[
            "ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2,
        ]);
        run(&["ip", "-n", ns1, "link", "set", if1, "up"]);
        run(&["ip", "-n", ns2, "link", "set", if2, "up"]);
    }

    /// Runs `cmd` inside `ns`; panics with its output if it fails. Returns
    /// its standard output.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let out = self.try_exec(ns, cmd);
        if !out.status.success() {
            panic!(
                "`ip netns exec {ns} {}` failed ({}): {}{}",
                cmd.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `cmd` inside `ns` and returns whatever happened.
    pub fn try_exec(&self, ns: &str, cmd: &[&str]) -> Output {
        if cmd.first() == Some(&"ping") {
            require_tool("ping", "iputils-ping", "send test traffic");
        }
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"))
    }

    /// `ethtool -K IF tx off`: veth endpoints must not leave TCP/UDP
    /// checksums to an offload that forwarding through AF_XDP skips.
    pub fn tx_offload_off(&self, ns: &str, ifname: &str) {
        require_tool(
            "ethtool",
            "ethtool",
            "turn off TX checksum offload on veth endpoints",
        );
        self.exec(ns, &["ethtool", "-K", ifname, "tx", "off"]);
    }

    /// The MAC address of `ifname` in `ns`.
    pub fn mac(&self, ns: &str, ifname: &str) -> [u8; 6] {
        let out = self.exec(ns, &["ip", "link", "show", "dev", ifname]);
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in `ip link show dev {ifname}`: {out}"));
        let mut mac = [0u8; 6];
        for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).expect("hex MAC byte");
        }
        mac
    }

    /// `ip link show dev IF` in `ns`.
    pub fn link_show(&self, ns: &str, ifname: &str) -> String {
        self.exec(ns, &["ip", "link", "show", "dev", ifname])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "lab: could not delete namespace {ns}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("lab: could not delete namespace {ns}: {e}"),
            }
        }
    }
}

/// Formats a MAC for `ip neigh`.
pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cmd[0]));
    if !out.status.success() {
        panic!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
