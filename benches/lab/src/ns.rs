//! The namespaces of one run: made with `ip`, named `<prefix><pid>-<name>`
//! so parallel runs never collide, removed when the [`Lab`] is dropped
//! (also on a panic).
//!
//! The only program run is `ip` (also as `ip netns exec NS sh -c` with
//! shell builtins, where a file under `/sys` must be read or written from
//! inside the namespace); sysctls and TX checksum offload are set by a
//! thread that enters the namespace.

use std::io::ErrorKind;
use std::process::{Command, Output};

use crate::netns::run_in;
use crate::{io_err, is_root, LabError};

/// Runs `cmd` (outside any namespace: `ip -n NS ...` reaches into one);
/// its stdout, or an error with its stderr. A missing `ip` is one line
/// naming iproute2.
pub fn run(cmd: &[&str]) -> Result<String, LabError> {
    let out = spawn(Command::new(cmd[0]).args(&cmd[1..]), cmd[0])?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: cmd.join(" "),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn spawn(cmd: &mut Command, program: &str) -> Result<Output, LabError> {
    cmd.output().map_err(|e| match (e.kind(), program) {
        (ErrorKind::NotFound, "ip") => LabError::MissingTool {
            tool: "ip",
            package: "iproute2",
        },
        _ => io_err(format!("cannot run {program}"))(e),
    })
}

/// Namespaces made for one run, removed on drop.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// A lab whose namespaces are named `<prefix><pid>-<name>`.
    pub fn new(prefix: &str) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        Ok(Lab {
            tag: format!("{prefix}{}", std::process::id()),
            namespaces: Vec::new(),
        })
    }

    /// Namespace `<tag>-<short>` with loopback up and IPv6 off (no router
    /// solicitations or MLD on the test links).
    pub fn add_ns(&mut self, short: &str) -> Result<String, LabError> {
        let name = format!("{}-{short}", self.tag);
        // One left by a killed run with the same pid: start afresh.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        run_in(&name, || {
            if std::path::Path::new("/proc/sys/net/ipv6").exists() {
                write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            }
            Ok(())
        })?;
        Ok(name)
    }

    /// The namespaces made so far.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// A veth pair `if1` (in `ns1`) <-> `if2` (in `ns2`), both up.
    pub fn veth(&self, ns1: &str, if1: &str, ns2: &str, if2: &str) -> Result<(), LabError> {
        run(&[
            "ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2,
        ])?;
        run(&["ip", "-n", ns1, "link", "set", if1, "up"])?;
        run(&["ip", "-n", ns2, "link", "set", if2, "up"]).map(drop)
    }

    /// Runs `cmd` in `ns` (`ip netns exec`: only `ip` itself, or `sh -c`
    /// with builtins); its stdout, or an error with its output.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Result<String, LabError> {
        let out = self.try_exec(ns, cmd)?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: format!("ip netns exec {ns} {}", cmd.join(" ")),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .trim()
                .to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd` in `ns` and returns whatever happened.
    pub fn try_exec(&self, ns: &str, cmd: &[&str]) -> Result<Output, LabError> {
        spawn(
            Command::new("ip").args(["netns", "exec", ns]).args(cmd),
            "ip",
        )
    }

    /// A counter of `ifname` in `ns` (`/sys/class/net/IF/statistics/NAME`,
    /// read by the shell inside the namespace, whose `/sys` is its own).
    pub fn if_stat(&self, ns: &str, ifname: &str, name: &str) -> Result<u64, LabError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !plain(ifname) || !plain(name) {
            return Err(LabError::Traffic(format!(
                "bad interface or counter name {ifname:?} {name:?}"
            )));
        }
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        let text = self.exec(
            ns,
            &["sh", "-c", &format!("read v < {path} && echo \"$v\"")],
        )?;
        text.trim().parse().map_err(|_| LabError::Command {
            cmd: format!("read {path}"),
            output: text,
        })
    }

    /// A sysctl value in `ns` (`net.ipv4.ip_forward`), from `/proc/sys`.
    pub fn sysctl(&self, ns: &str, key: &str) -> Result<String, LabError> {
        let key = key.to_string();
        run_in(ns, move || {
            let path = sysctl_path(&key);
            std::fs::read_to_string(&path)
                .map(|v| v.trim().to_string())
                .map_err(io_err(format!("read {path}")))
        })
    }

    /// Sets a sysctl in `ns`, writing `/proc/sys` from inside it.
    pub fn set_sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        let (key, value) = (key.to_string(), value.to_string());
        run_in(ns, move || write_sysctl(&key, &value))
    }

    /// Turns IPv6 on for `ifname` in `ns` (namespaces start with it off),
    /// without duplicate address detection so that addresses are usable
    /// at once. With `slaac` the interface takes router advertisements
    /// and forms addresses from them (`accept_ra = 2`, `autoconf = 1`: a
    /// host, whatever `forwarding` says); else it ignores them.
    pub fn enable_ipv6(&self, ns: &str, ifname: &str, slaac: bool) -> Result<(), LabError> {
        let conf = format!("net.ipv6.conf.{ifname}");
        let (ra, auto) = if slaac { ("2", "1") } else { ("0", "0") };
        for (key, value) in [
            ("accept_dad", "0"),
            ("accept_ra", ra),
            ("autoconf", auto),
            ("disable_ipv6", "0"),
        ] {
            self.set_sysctl(ns, &format!("{conf}.{key}"), value)?;
        }
        Ok(())
    }

    /// Turns TX checksum offload of `ifname` in `ns` off (what `ethtool -K
    /// IF tx off` does): veth endpoints must not leave TCP/UDP checksums
    /// to an offload that forwarding through AF_XDP skips.
    pub fn tx_checksum_off(&self, ns: &str, ifname: &str) -> Result<(), LabError> {
        let ifname = ifname.to_string();
        run_in(ns, move || {
            dataplane::xsk::ethtool::set_tx_checksum(&ifname, false).map_err(io_err("SIOCETHTOOL"))
        })
    }

    /// Whether TX checksum offload of `ifname` in `ns` is on.
    pub fn tx_checksum(&self, ns: &str, ifname: &str) -> Result<bool, LabError> {
        let ifname = ifname.to_string();
        run_in(ns, move || {
            dataplane::xsk::ethtool::tx_checksum(&ifname).map_err(io_err("SIOCETHTOOL"))
        })
    }

    /// The MAC address of `ifname` in `ns`.
    pub fn mac(&self, ns: &str, ifname: &str) -> Result<[u8; 6], LabError> {
        let out = self.link_show(ns, ifname)?;
        let bad = || LabError::Command {
            cmd: format!("ip -n {ns} link show dev {ifname}"),
            output: format!("no MAC in: {out}"),
        };
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(bad)?;
        let mut mac = [0u8; 6];
        let mut n = 0;
        for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(mac)
    }

    /// `ip link show dev IF` in `ns`.
    pub fn link_show(&self, ns: &str, ifname: &str) -> Result<String, LabError> {
        run(&["ip", "-n", ns, "link", "show", "dev", ifname])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "lab: could not delete namespace {ns}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("lab: could not delete namespace {ns}: {e}"),
            }
        }
    }
}

/// `/proc/sys/net/ipv4/ip_forward` for `net.ipv4.ip_forward`.
fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Writes a sysctl of the calling thread's network namespace.
fn write_sysctl(key: &str, value: &str) -> Result<(), LabError> {
    let path = sysctl_path(key);
    std::fs::write(&path, value).map_err(io_err(format!("write {value} to {path}")))
}

/// Formats a MAC for `ip neigh`.
pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_become_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.rp_filter"),
            "/proc/sys/net/ipv4/conf/all/rp_filter"
        );
        assert_eq!(mac_str([2, 0, 0, 0, 0xab, 1]), "02:00:00:00:ab:01");
    }
}
