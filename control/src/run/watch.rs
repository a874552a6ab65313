//! Watches the ports' devices while routerd runs: a device deleted (or
//! deleted and created again, which gives it a new ifindex) ends the run.
//!
//! Why stop rather than forward on the other ports: the kernel unbinds the
//! AF_XDP socket of a deleted device, and the frames in its fill and TX
//! rings never come back to the worker's shared UMEM; the worker would run
//! on with a third or more of its frames gone and a port it cannot send on.
//! routerd runs only with every configured port, at start as while running;
//! a supervisor that restarts it gets the start-up line `no such device`
//! until the device is back. A link that goes down and up is not a fault:
//! the socket stays bound and forwarding resumes by itself.

use std::fmt;

/// A port whose device went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGone {
    /// Config name (`lan`).
    pub name: String,
    /// Kernel device (`r1`).
    pub device: String,
    /// Deleted, or replaced by a new device of the same name.
    pub replaced: bool,
}

impl fmt::Display for PortGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.replaced {
            "was deleted and created again (new ifindex)"
        } else {
            "was deleted"
        };
        write!(
            f,
            "port {} ({}) is gone: the device {what} while routerd ran; routerd stopped \
             (start it again once {} exists, or take the port out of the config)",
            self.name, self.device, self.device
        )
    }
}

/// The devices of the ports and the ifindex each had when routerd attached.
#[derive(Clone, Debug, Default)]
pub struct PortWatch {
    ports: Vec<(String, String, u32)>,
}

impl PortWatch {
    /// Watches `(name, device, ifindex)` triples.
    pub fn new(ports: Vec<(String, String, u32)>) -> PortWatch {
        PortWatch { ports }
    }

    /// The first port whose device is gone, if any (one sysfs read per port).
    pub fn check(&self) -> Option<PortGone> {
        self.ports.iter().find_map(|(name, device, ifindex)| {
            let now = current_ifindex(device);
            (now != Some(*ifindex)).then(|| PortGone {
                name: name.clone(),
                device: device.clone(),
                replaced: now.is_some(),
            })
        })
    }
}

/// The device's ifindex from sysfs (`None` when there is no such device).
fn current_ifindex(device: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{device}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_gone_and_named() {
        let w = PortWatch::new(vec![("lan".into(), "afxnodev-xyz".into(), 7)]);
        let gone = w.check().expect("no such device");
        assert!(!gone.replaced);
        let line = gone.to_string();
        assert!(
            line.starts_with("port lan (afxnodev-xyz) is gone: the device was deleted"),
            "{line}"
        );
    }

    #[test]
    fn loopback_with_its_own_ifindex_is_not_gone() {
        let Some(lo) = current_ifindex("lo") else {
            return; // no sysfs here
        };
        let w = PortWatch::new(vec![("l".into(), "lo".into(), lo)]);
        assert_eq!(w.check(), None);
        let w = PortWatch::new(vec![("l".into(), "lo".into(), lo + 1000)]);
        assert!(w.check().expect("replaced").replaced);
    }
}
