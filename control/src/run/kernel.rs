//! What routerd does to the kernel's view of the ports it takes over.
//!
//! The ports' addresses belong to the dataplane: while routerd runs, the
//! kernel must not send on the ports behind its back. So at start routerd
//! removes the ports' IPv4 addresses from the kernel (which also removes the
//! kernel's connected routes and the routes via gateways on them), saves the
//! kernel's other IPv4 routes through the ports, and turns IPv6 off on them
//! (no router solicitations, MLD or neighbour discovery: the dataplane
//! answers neighbour discovery for the ports' IPv6 addresses), which also
//! removes their IPv6 addresses, saved first. The links stay up.
//! At a clean exit (SIGINT, SIGTERM) it puts all of it back. After SIGKILL
//! nothing is put back: the ports stay without kernel addresses until the
//! operator (or the next routerd's clean exit, which restores only what it
//! found) adds them.
//!
//! Talks rtnetlink ([`super::netlink`]) and writes `/proc/sys`; starts no
//! process and never runs on the packet path.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol};

use super::netlink::{self, RouteOp, Rtnl};

/// A failure to read or change the kernel's state of a port.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The device does not exist.
    #[error("no such device {0}: create it or fix interfaces[].device")]
    NoDevice(String),
    /// A netlink request failed.
    #[error("{what}: {err}")]
    Netlink { what: String, err: std::io::Error },
    /// A sysfs or procfs file could not be read or written.
    #[error("{path}: {err}")]
    Proc { path: PathBuf, err: std::io::Error },
}

/// The kernel state of one port as found at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortKernelState {
    /// Device name.
    pub device: String,
    /// Its interface index.
    pub index: u32,
    /// IPv4 addresses with prefix length (`198.18.0.1/24`).
    pub addresses: Vec<(Ipv4Addr, u8)>,
    /// IPv4 routes of the main table through the device, other than the
    /// kernel's own connected routes, as the kernel dumped them.
    pub routes: Vec<RouteMessage>,
    /// Previous `disable_ipv6` value, when the file exists.
    pub disable_ipv6: Option<String>,
    /// Permanent global IPv6 addresses with prefix length (gone while
    /// IPv6 is off on the port, put back after it).
    pub addresses6: Vec<(Ipv6Addr, u8)>,
}

/// Ports taken from the kernel; [`Takeover::restore`] (or drop) gives them back.
#[derive(Debug, Default)]
pub struct Takeover {
    ports: Vec<PortKernelState>,
    restored: bool,
}

/// The device's MAC address from sysfs.
pub fn device_mac(device: &str) -> Result<dataplane::addr::Mac, KernelError> {
    let text = read_sys(device, "address")?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        let part = parts.next().unwrap_or("");
        *b = u8::from_str_radix(part, 16).map_err(|_| KernelError::Proc {
            path: sys_path(device, "address"),
            err: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a MAC address"),
        })?;
    }
    Ok(dataplane::addr::Mac(mac))
}

/// The device's MTU from sysfs.
pub fn device_mtu(device: &str) -> Result<u32, KernelError> {
    let text = read_sys(device, "mtu")?;
    text.trim().parse().map_err(|_| KernelError::Proc {
        path: sys_path(device, "mtu"),
        err: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
    })
}

fn sys_path(device: &str, file: &str) -> PathBuf {
    PathBuf::from(format!("/sys/class/net/{device}/{file}"))
}

/// The ports' NAPI settings for preferred busy polling while routerd runs
/// (`napi_defer_hard_irqs`, `gro_flush_timeout`: the kernel's AF_XDP
/// busy-poll recipe), with the values found, put back by
/// [`NapiTuning::restore`].
#[derive(Debug, Default)]
pub struct NapiTuning {
    saved: Vec<(String, &'static str, String)>,
}

/// What `dataplane.busy_poll` sets: hard interrupts deferred twice, and a
/// 200 us timeout that re-arms them if the application stops polling.
const NAPI_SETTINGS: [(&str, &str); 2] = [
    ("napi_defer_hard_irqs", "2"),
    ("gro_flush_timeout", "200000"),
];

impl NapiTuning {
    /// Sets them on every device, saving what was there.
    pub fn apply(devices: &[String]) -> Result<NapiTuning, KernelError> {
        let mut t = NapiTuning::default();
        for dev in devices {
            for (file, value) in NAPI_SETTINGS {
                let old = read_sys(dev, file)?.trim().to_string();
                write_sys(dev, file, value)?;
                t.saved.push((dev.clone(), file, old));
            }
        }
        Ok(t)
    }

    /// What was set, as `DEVICE FILE=VALUE` pairs, for the log.
    pub fn describe(&self) -> String {
        NAPI_SETTINGS
            .iter()
            .map(|(f, v)| format!("{f}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Puts the saved values back; the problems, one line each.
    pub fn restore(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (dev, file, old) in self.saved.drain(..).rev() {
            if let Err(e) = write_sys(&dev, file, &old) {
                problems.push(e.to_string());
            }
        }
        problems
    }
}

fn write_sys(device: &str, file: &str, value: &str) -> Result<(), KernelError> {
    let path = sys_path(device, file);
    std::fs::write(&path, value).map_err(|err| KernelError::Proc { path, err })
}

fn read_sys(device: &str, file: &str) -> Result<String, KernelError> {
    if device.is_empty() || device.contains('/') {
        return Err(KernelError::NoDevice(device.to_string()));
    }
    let path = sys_path(device, file);
    std::fs::read_to_string(&path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            KernelError::NoDevice(device.to_string())
        } else {
            KernelError::Proc { path, err }
        }
    })
}

/// A netlink socket, with the failure named.
pub(crate) fn rtnl() -> Result<Rtnl, KernelError> {
    Rtnl::new().map_err(|err| KernelError::Netlink {
        what: "cannot open an rtnetlink socket".into(),
        err,
    })
}

/// Names a failed netlink request.
pub(crate) fn nl_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KernelError {
    let what = what.into();
    move |err| KernelError::Netlink { what, err }
}

/// `198.18.0.1/24`.
pub fn addr_text(a: &(Ipv4Addr, u8)) -> String {
    format!("{}/{}", a.0, a.1)
}

/// The interface index of `device`.
pub fn device_index(device: &str) -> Result<u32, KernelError> {
    netlink::ifindex(device).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            KernelError::NoDevice(device.to_string())
        } else {
            KernelError::Proc {
                path: sys_path(device, "ifindex"),
                err,
            }
        }
    })
}

/// The route as it can be given back to the kernel: what the dump adds
/// about it (cache info, flags the kernel sets) left out.
fn restorable(r: &RouteMessage) -> RouteMessage {
    let mut m = r.clone();
    m.header.flags = Default::default();
    m.attributes.retain(|a| {
        matches!(
            a,
            RouteAttribute::Destination(_)
                | RouteAttribute::Gateway(_)
                | RouteAttribute::Oif(_)
                | RouteAttribute::Priority(_)
                | RouteAttribute::PrefSource(_)
                | RouteAttribute::Table(_)
                | RouteAttribute::MultiPath(_)
                | RouteAttribute::Metrics(_)
        )
    });
    m
}

/// The kernel's IPv4 addresses, routes, IPv6 switch and IPv6 addresses of
/// `device`.
pub fn port_state(device: &str) -> Result<PortKernelState, KernelError> {
    let index = device_index(device)?;
    let mut nl = rtnl()?;
    let addresses = nl
        .ipv4_addresses(index)
        .map_err(nl_err(format!("listing the IPv4 addresses of {device}")))?;
    let routes = nl
        .ipv4_routes()
        .map_err(nl_err("listing the kernel's IPv4 routes"))?
        .iter()
        .filter(|r| {
            netlink::route_table(r)
                == u32::from(netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN)
                && r.header.protocol != RouteProtocol::Kernel
                && netlink::route_oif(r) == Some(index)
        })
        .map(restorable)
        .collect();
    let v6 = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{device}/disable_ipv6"));
    let disable_ipv6 = std::fs::read_to_string(v6)
        .ok()
        .map(|s| s.trim().to_string());
    let addresses6 = match disable_ipv6.as_deref() {
        Some("0") => nl
            .ipv6_addresses(index)
            .map_err(nl_err(format!("listing the IPv6 addresses of {device}")))?,
        _ => Vec::new(),
    };
    Ok(PortKernelState {
        device: device.to_string(),
        index,
        addresses,
        routes,
        disable_ipv6,
        addresses6,
    })
}

impl Takeover {
    /// Removes the kernel's addresses (and so its routes) from `devices`
    /// and turns IPv6 off on them, remembering what was there.
    pub fn take(devices: &[String]) -> Result<Takeover, KernelError> {
        let mut t = Takeover::default();
        for dev in devices {
            let st = port_state(dev)?;
            // Record first: a failure half-way still restores what was done.
            t.ports.push(st.clone());
            let mut nl = rtnl()?;
            for a in &st.addresses {
                nl.del_address(st.index, a.0, a.1)
                    .map_err(nl_err(format!("removing {} from {dev}", addr_text(a))))?;
            }
            if st.disable_ipv6.is_some() {
                set_disable_ipv6(dev, "1")?;
            }
        }
        Ok(t)
    }

    /// What was found on each port.
    pub fn ports(&self) -> &[PortKernelState] {
        &self.ports
    }

    /// Puts the addresses, routes, IPv6 switch and IPv6 addresses back. Returns the
    /// problems met (each one line); carries on past them.
    pub fn restore(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.restored {
            return problems;
        }
        self.restored = true;
        let mut nl = match rtnl() {
            Ok(nl) => nl,
            Err(e) => return vec![e.to_string()],
        };
        for st in &self.ports {
            let dev = st.device.as_str();
            for a in &st.addresses {
                if let Err(e) = nl.add_address(st.index, a.0, a.1, true) {
                    problems.push(format!("adding {} to {dev}: {e}", addr_text(a)));
                }
            }
            for r in &st.routes {
                if let Err(e) = nl.route(r.clone(), RouteOp::Replace) {
                    problems.push(format!("restoring a route through {dev}: {e}"));
                }
            }
            if let Some(v) = &st.disable_ipv6 {
                if let Err(e) = set_disable_ipv6(dev, v) {
                    problems.push(e.to_string());
                }
            }
            for (a, len) in &st.addresses6 {
                if let Err(e) = nl.add_address(st.index, *a, *len, true) {
                    problems.push(format!("adding {a}/{len} to {dev}: {e}"));
                }
            }
        }
        problems
    }
}

impl Drop for Takeover {
    fn drop(&mut self) {
        for p in self.restore() {
            eprintln!("routerd: restoring kernel state: {p}");
        }
    }
}

fn set_disable_ipv6(dev: &str, value: &str) -> Result<(), KernelError> {
    let path = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"));
    std::fs::write(&path, value).map_err(|err| KernelError::Proc { path, err })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_names_the_fix() {
        let e = device_mac("nosuchdev0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no such device nosuchdev0: create it or fix interfaces[].device"
        );
    }

    #[test]
    fn loopback_has_a_mac_and_mtu() {
        assert_eq!(device_mac("lo").unwrap(), dataplane::addr::Mac([0; 6]));
        assert!(device_mtu("lo").unwrap() > 0);
    }
}
