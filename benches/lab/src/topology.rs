//! A lab of network namespaces for `lab` and the end-to-end tests:
//! client - router - server joined by veth pairs, routerd run inside the
//! router namespace, and Rust traffic endpoints (TCP, UDP) in threads that
//! enter the client and server namespaces.
//!
//! ```text
//!  ns <tag>-cli            ns <tag>-rtr                ns <tag>-srv
//!  cli0 198.18.0.2/24 --- r0 [routerd or Linux] r1 --- srv0 198.19.0.2/24
//!  gw 198.18.0.1           198.18.0.1   198.19.0.1      gw 198.19.0.1
//!                                                       mac 02:00:00:00:00:02
//! ```
//! The router namespace carries the kernel addresses of a normal Linux
//! router (r0 198.18.0.1/24, r1 198.19.0.1/24, 203.0.113.0/24 via
//! 198.19.0.2) so that Linux forwarding can be measured on the same links;
//! routerd takes them off while it runs and puts them back at exit.
//! Kernel forwarding is off there unless a measurement turns it on.
//!
//! [`Topology::add_ipv6`] makes it dual stack as the configs are: cli0
//! 2001:db8::2/64 (gw 2001:db8::1), srv0 2001:db8:1::2/64 (gw
//! 2001:db8:1::1), plus their
//! link-local addresses; IPv6 stays off everywhere else (the router's
//! ports belong to routerd, which answers neighbour discovery itself).
//!
//! Everything is bounded in time and count, and the namespaces (with their
//! veths) are removed when the [`Lab`] is dropped, also on a panic.

use std::time::Duration;

use crate::ns::{run, Lab};
use crate::ping::{ping_in, PingOptions, PingResult};
use crate::ping6::{ping6_in, Ping6Result};
use crate::LabError;

/// Client address.
pub const CLIENT_IP: &str = "198.18.0.2";
/// Server address.
pub const SERVER_IP: &str = "198.19.0.2";
/// Server MAC: the static neighbour of `configs/transit-router.yaml`.
pub const SERVER_MAC: &str = "02:00:00:00:00:02";
/// An address routed to the server that the server does not own: its
/// kernel drops such packets early (forwarding off, no ICMP), a cheap sink.
pub const SINK_IP: &str = "203.0.113.1";

/// Client IPv6 address (after [`Topology::add_ipv6`]).
pub const CLIENT_IP6: &str = "2001:db8::2";
/// Server IPv6 address.
pub const SERVER_IP6: &str = "2001:db8:1::2";
/// The router's IPv6 address on the client's link (wan, r0).
pub const ROUTER_WAN_IP6: &str = "2001:db8::1";
/// The router's IPv6 address on the server's link (lan, r1).
pub const ROUTER_LAN_IP6: &str = "2001:db8:1::1";

/// The three-namespace lab.
#[derive(Debug)]
pub struct Topology {
    /// The namespaces (dropped last: removes everything).
    pub lab: Lab,
    /// Client namespace (`cli0`).
    pub cli: String,
    /// Router namespace (`r0`, `r1`).
    pub rtr: String,
    /// Server namespace (`srv0`).
    pub srv: String,
}

impl Topology {
    /// Builds client - router - server; kernel forwarding off in the router.
    pub fn build(prefix: &str) -> Result<Topology, LabError> {
        Topology::build_with_queues(prefix, 1)
    }

    /// [`Topology::build`] with veth pairs of `queues` RX and TX queues on
    /// both ends: the router's ports can then serve that many workers, and
    /// the endpoints' flows spread over the queues (a veth delivers on the
    /// receive queue of the sender's TX queue, which follows the flow).
    pub fn build_with_queues(prefix: &str, queues: u32) -> Result<Topology, LabError> {
        let mut lab = Lab::new(prefix)?;
        let cli = lab.add_ns("cli")?;
        let rtr = lab.add_ns("rtr")?;
        let srv = lab.add_ns("srv")?;
        let q = queues.max(1).to_string();
        for (ns, rdev, peer_ns, peer) in [(&rtr, "r0", &cli, "cli0"), (&rtr, "r1", &srv, "srv0")] {
            run(&[
                "ip",
                "-n",
                ns,
                "link",
                "add",
                rdev,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "netns",
                peer_ns,
            ])?;
        }
        run(&[
            "ip", "-n", &srv, "link", "set", "srv0", "address", SERVER_MAC,
        ])?;
        for (ns, dev) in [(&cli, "cli0"), (&rtr, "r0"), (&rtr, "r1"), (&srv, "srv0")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        for (ns, dev, addr, gw) in [
            (&cli, "cli0", "198.18.0.2/24", "198.18.0.1"),
            (&srv, "srv0", "198.19.0.2/24", "198.19.0.1"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
            run(&["ip", "-n", ns, "route", "add", "default", "via", gw])?;
            // veth: forwarded TCP/UDP would carry unfinished checksums.
            lab.tx_checksum_off(ns, dev)?;
        }
        let t = Topology { lab, cli, rtr, srv };
        t.kernel_router_addresses()?;
        t.lab.set_sysctl(&t.rtr, "net.ipv4.ip_forward", "0")?;
        Ok(t)
    }

    /// Makes the endpoints dual stack: IPv6 on cli0 and srv0 (no DAD, no
    /// router advertisements taken), [`CLIENT_IP6`] and [`SERVER_IP6`] as
    /// /64s, default routes via the router's addresses on their links.
    pub fn add_ipv6(&self) -> Result<(), LabError> {
        for (ns, dev, addr, gw) in [
            (&self.cli, "cli0", CLIENT_IP6, ROUTER_WAN_IP6),
            (&self.srv, "srv0", SERVER_IP6, ROUTER_LAN_IP6),
        ] {
            self.lab.enable_ipv6(ns, dev, false)?;
            let cidr = format!("{addr}/64");
            run(&[
                "ip", "-n", ns, "-6", "addr", "add", &cidr, "dev", dev, "nodad",
            ])?;
            run(&[
                "ip", "-n", ns, "-6", "route", "add", "default", "via", gw, "dev", dev,
            ])?;
        }
        Ok(())
    }

    /// `ping -6 -c COUNT -i 0.2 -W 2` from the client to `dst`.
    pub fn ping6(&self, dst: &str, count: u32) -> Result<Ping6Result, LabError> {
        ping6_in(&self.cli, dst, &PingOptions::count(count))
    }

    /// Gives the router namespace's kernel the addresses and route of a
    /// Linux router (routerd restores them itself at a clean exit; this
    /// also covers a SIGKILLed one).
    pub fn kernel_router_addresses(&self) -> Result<(), LabError> {
        let r = self.rtr.as_str();
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "replace",
            "198.18.0.1/24",
            "dev",
            "r0",
        ])?;
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "replace",
            "198.19.0.1/24",
            "dev",
            "r1",
        ])?;
        run(&[
            "ip",
            "-n",
            r,
            "route",
            "replace",
            "203.0.113.0/24",
            "via",
            SERVER_IP,
            "dev",
            "r1",
        ])
        .map(drop)
    }

    /// `ping -c COUNT -i 0.2 -W 2` from the client to `dst`.
    pub fn ping(&self, dst: &str, count: u32) -> Result<PingResult, LabError> {
        ping_in(&self.cli, dst, &PingOptions::count(count))
    }

    /// Whether any XDP program is attached in the router namespace.
    pub fn router_has_xdp(&self) -> Result<bool, LabError> {
        let text = self.lab.exec(&self.rtr, &["ip", "link", "show"])?;
        Ok(text.contains("xdp"))
    }

    /// Whether every XDP program left the router namespace within `limit`:
    /// the kernel may release a closed bpf_link from a work queue, a moment
    /// after the process that held it exited.
    pub fn router_xdp_gone_within(&self, limit: Duration) -> Result<bool, LabError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if !self.router_has_xdp()? {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
