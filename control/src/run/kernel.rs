//! What routerd does to the kernel's view of the ports it takes over.
//!
//! The ports' addresses belong to the dataplane: while routerd runs, the
//! kernel must not send on the ports behind its back. So at start routerd
//! removes the ports' IPv4 addresses from the kernel (which also removes the
//! kernel's connected routes and the routes via gateways on them), saves the
//! kernel's other IPv4 routes through the ports, and turns IPv6 off on them
//! (no router solicitations, MLD or neighbour discovery). The links stay up.
//! At a clean exit (SIGINT, SIGTERM) it puts all of it back. After SIGKILL
//! nothing is put back: the ports stay without kernel addresses until the
//! operator (or the next routerd's clean exit, which restores only what it
//! found) adds them.
//!
//! Uses `ip` (iproute2) and `/proc/sys`; never runs on the packet path.

use std::path::PathBuf;
use std::process::Command;

/// A failure to read or change the kernel's state of a port.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The device does not exist.
    #[error("no such device {0}: create it or fix interfaces[].device")]
    NoDevice(String),
    /// `ip` could not be run.
    #[error("cannot run `ip` ({0}): install iproute2")]
    NoIp(std::io::Error),
    /// An `ip` command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Ip { cmd: String, stderr: String },
    /// A sysfs or procfs file could not be read or written.
    #[error("{path}: {err}")]
    Proc { path: PathBuf, err: std::io::Error },
}

/// The kernel state of one port as found at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortKernelState {
    /// Device name.
    pub device: String,
    /// IPv4 addresses with prefix length (`198.18.0.1/24`).
    pub addresses: Vec<String>,
    /// IPv4 routes of the main table through the device, other than the
    /// kernel's own connected routes, as `ip route` arguments.
    pub routes: Vec<Vec<String>>,
    /// Previous `disable_ipv6` value, when the file exists.
    pub disable_ipv6: Option<String>,
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

pub(crate) fn ip(args: &[&str]) -> Result<String, KernelError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(KernelError::NoIp)?;
    if !out.status.success() {
        return Err(KernelError::Ip {
            cmd: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel's IPv4 addresses, routes and IPv6 switch of `device`.
pub fn port_state(device: &str) -> Result<PortKernelState, KernelError> {
    let addrs = ip(&["-4", "-o", "addr", "show", "dev", device])?;
    let addresses = addrs
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.by_ref().find(|t| *t == "inet")?;
            w.next().map(str::to_string)
        })
        .collect();
    let routes = ip(&["-4", "route", "show", "dev", device])?
        .lines()
        .filter(|l| !l.contains("proto kernel"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect();
    let v6 = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{device}/disable_ipv6"));
    let disable_ipv6 = std::fs::read_to_string(v6)
        .ok()
        .map(|s| s.trim().to_string());
    Ok(PortKernelState {
        device: device.to_string(),
        addresses,
        routes,
        disable_ipv6,
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
            for a in &st.addresses {
                ip(&["addr", "del", a, "dev", dev])?;
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

    /// Puts the addresses, routes and IPv6 switch back. Returns the
    /// problems met (each one line); carries on past them.
    pub fn restore(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.restored {
            return problems;
        }
        self.restored = true;
        for st in &self.ports {
            let dev = st.device.as_str();
            for a in &st.addresses {
                if let Err(e) = ip(&["addr", "replace", a, "dev", dev]) {
                    problems.push(e.to_string());
                }
            }
            for r in &st.routes {
                let mut args: Vec<&str> = vec!["route", "replace"];
                args.extend(r.iter().map(String::as_str));
                args.extend(["dev", dev]);
                if let Err(e) = ip(&args) {
                    problems.push(e.to_string());
                }
            }
            if let Some(v) = &st.disable_ipv6 {
                if let Err(e) = set_disable_ipv6(dev, v) {
                    problems.push(e.to_string());
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
