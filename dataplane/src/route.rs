//! Longest-prefix-match routing table (placeholder: linear scan; replaced by DIR-24-8).

use crate::addr::Ipv4Prefix;

/// Route table mapping prefixes to next-hop ids.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<(Ipv4Prefix, u32)>,
}

impl RouteTable {
    /// Build from `(prefix, next_hop_id)`; a later duplicate prefix wins.
    pub fn build(routes: &[(Ipv4Prefix, u32)]) -> RouteTable {
        let mut r: Vec<_> = routes.to_vec();
        r.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        RouteTable { routes: r }
    }

    /// Next-hop id of the longest matching prefix.
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        self.routes.iter().find(|(p, _)| p.contains(ip)).map(|(_, n)| *n)
    }
}
