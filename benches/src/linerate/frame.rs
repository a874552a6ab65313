//! Test frames: Ethernet + IPv4 + UDP with an 18-byte payload header
//! (magic, flow id, sequence number, TX timestamp), the flow set, and frame
//! sizes (fixed or IMIX).
//!
//! Frame sizes are RFC 2544 sizes: they include the 4-byte Ethernet FCS,
//! which the NIC (or veth, which has none) adds, so a 64-byte frame is 60
//! bytes in the buffer. The smallest frame holds the whole header:
//! 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 18 (payload header) = 60.
//!
//! Payload header, in network byte order, right after the UDP header:
//! `magic: u16 | flow: u32 | seq: u32 | tx_ns: u64` (`tx_ns` is
//! `CLOCK_MONOTONIC`: both ends run on one machine).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The first two payload bytes of every test frame ("LR").
pub const MAGIC: [u8; 2] = [0x4c, 0x52];
/// Bytes before the payload header: Ethernet, IPv4 without options, UDP.
pub const HEADERS_LEN: usize = 14 + 20 + 8;
/// Bytes of the payload header.
pub const PAYLOAD_HEADER_LEN: usize = 18;
/// Ethernet frame check sequence, counted in frame sizes, not in buffers.
pub const FCS_LEN: usize = 4;
/// Smallest frame size (with FCS).
pub const MIN_FRAME: u16 = 64;
/// Largest frame size (with FCS), untagged Ethernet.
pub const MAX_FRAME: u16 = 1518;
/// IPv4 TTL of generated packets.
pub const TTL: u8 = 64;
/// The benchmarking range of RFC 2544 (198.18.0.0/15); every address we
/// generate lies in it.
pub const BENCH_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);

const OFF_IP: usize = 14;
const OFF_UDP: usize = 34;
const OFF_PAYLOAD: usize = HEADERS_LEN;
const OFF_TS: usize = OFF_PAYLOAD + 10;

/// A MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(|| format!("bad MAC {s:?}"))?;
            if p.is_empty() || p.len() > 2 {
                return Err(format!("bad MAC {s:?}"));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC {s:?}"));
        }
        Ok(Mac(out))
    }
}

/// Frame sizes a run sends: one size, or an IMIX cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeMix {
    /// Every frame this size (with FCS).
    Fixed(u16),
    /// Simple IMIX 7:4:1 of 64, 594 and 1518 bytes.
    Imix,
    /// The 7:4:1 variant with 576 instead of 594.
    Imix576,
}

/// Order of one IMIX cycle: 7 small, 4 medium, 1 large, spread out so that
/// no burst is all large frames.
const IMIX_ORDER: [u8; 12] = [0, 1, 0, 0, 1, 0, 2, 0, 1, 0, 0, 1];

impl SizeMix {
    /// The frame sizes of one cycle, in sending order.
    pub fn cycle(&self) -> Vec<u16> {
        match *self {
            SizeMix::Fixed(s) => vec![s],
            SizeMix::Imix | SizeMix::Imix576 => {
                let mid = if *self == SizeMix::Imix { 594 } else { 576 };
                let sizes = [64, mid, 1518];
                IMIX_ORDER.iter().map(|&i| sizes[usize::from(i)]).collect()
            }
        }
    }

    /// Mean frame size (with FCS) in bytes.
    pub fn mean(&self) -> f64 {
        let c = self.cycle();
        c.iter().map(|&s| f64::from(s)).sum::<f64>() / c.len() as f64
    }

    /// Checks every size is in 64..=1518.
    pub fn validate(&self) -> Result<(), String> {
        if let SizeMix::Fixed(s) = *self {
            if !(MIN_FRAME..=MAX_FRAME).contains(&s) {
                return Err(format!(
                    "frame size {s} out of range {MIN_FRAME}..={MAX_FRAME}"
                ));
            }
        }
        Ok(())
    }

    /// A short label: `64`, `imix`, `imix576`.
    pub fn label(&self) -> String {
        match *self {
            SizeMix::Fixed(s) => s.to_string(),
            SizeMix::Imix => "imix".into(),
            SizeMix::Imix576 => "imix576".into(),
        }
    }
}

impl FromStr for SizeMix {
    type Err = String;

    fn from_str(s: &str) -> Result<SizeMix, String> {
        let mix = match s {
            "imix" => SizeMix::Imix,
            "imix576" => SizeMix::Imix576,
            _ => SizeMix::Fixed(s.parse().map_err(|_| {
                format!("bad frame size {s:?}: a number in 64..=1518, `imix` or `imix576`")
            })?),
        };
        mix.validate()?;
        Ok(mix)
    }
}

impl fmt::Display for SizeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One flow's addresses and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
}

/// Most flows a set may have: source ports stay distinct.
pub const MAX_FLOWS: u32 = 64_512;
/// Distinct source and destination addresses the flows cycle through.
pub const ADDRS_PER_SIDE: u32 = 64;

/// How flows are laid out: flow `i` goes from `src + i % 64` port
/// `1024 + i` to `dst + (i / 64) % 64` port `4000 + i % 1000`. Every flow
/// has its own source port, so the 5-tuples are distinct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSet {
    /// Number of flows.
    pub count: u32,
    /// First source address.
    pub src: Ipv4Addr,
    /// First destination address.
    pub dst: Ipv4Addr,
}

fn in_bench_net(a: Ipv4Addr) -> bool {
    u32::from(a) >> (32 - BENCH_NET.1) == u32::from(BENCH_NET.0) >> (32 - BENCH_NET.1)
}

impl FlowSet {
    /// Checks the count and that every address lies in 198.18.0.0/15.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 || self.count > MAX_FLOWS {
            return Err(format!("flows must be 1..={MAX_FLOWS}, not {}", self.count));
        }
        let span = self.count.min(ADDRS_PER_SIDE) - 1;
        let dst_span = (self.count - 1) / ADDRS_PER_SIDE % ADDRS_PER_SIDE;
        for (base, span) in [(self.src, span), (self.dst, dst_span)] {
            let last = u32::from(base).checked_add(span).map(Ipv4Addr::from);
            if !in_bench_net(base) || !last.is_some_and(in_bench_net) {
                return Err(format!(
                    "address {base} + {span} leaves 198.18.0.0/15, the benchmarking range"
                ));
            }
        }
        Ok(())
    }

    /// Flow `i` (below `count`).
    pub fn flow(&self, i: u32) -> Flow {
        Flow {
            src: Ipv4Addr::from(u32::from(self.src) + i % ADDRS_PER_SIDE),
            dst: Ipv4Addr::from(u32::from(self.dst) + (i / ADDRS_PER_SIDE) % ADDRS_PER_SIDE),
            sport: (1024 + i) as u16,
            dport: (4000 + i % 1000) as u16,
        }
    }

    /// Every destination address the flows use.
    pub fn destinations(&self) -> Vec<Ipv4Addr> {
        let n = self.count.div_ceil(ADDRS_PER_SIDE).min(ADDRS_PER_SIDE);
        (0..n)
            .map(|k| Ipv4Addr::from(u32::from(self.dst) + k))
            .collect()
    }

    /// Every source address the flows use.
    pub fn sources(&self) -> Vec<Ipv4Addr> {
        (0..self.count.min(ADDRS_PER_SIDE))
            .map(|k| Ipv4Addr::from(u32::from(self.src) + k))
            .collect()
    }
}

/// The payload header of a test frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Flow index.
    pub flow: u32,
    /// Sequence number within the flow, from 0.
    pub seq: u32,
    /// `CLOCK_MONOTONIC` nanoseconds when the frame was queued for sending.
    pub tx_ns: u64,
}

/// Prebuilt headers of every flow: a frame is a copy of 42 + 18 bytes and a
/// patch of lengths and checksum.
#[derive(Clone, Debug)]
pub struct Templates {
    /// `HEADERS_LEN` bytes per flow, lengths and IP checksum zero.
    headers: Vec<[u8; HEADERS_LEN]>,
    /// One's complement sum of each flow's IP header without length.
    ip_sums: Vec<u32>,
}

impl Templates {
    /// Headers of every flow of `flows`, from MAC `src_mac` to `dst_mac`.
    pub fn new(flows: &FlowSet, src_mac: Mac, dst_mac: Mac) -> Templates {
        let mut headers = Vec::with_capacity(flows.count as usize);
        let mut ip_sums = Vec::with_capacity(flows.count as usize);
        for i in 0..flows.count {
            let f = flows.flow(i);
            let mut h = [0u8; HEADERS_LEN];
            h[0..6].copy_from_slice(&dst_mac.0);
            h[6..12].copy_from_slice(&src_mac.0);
            h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut h[OFF_IP..OFF_UDP];
            ip[0] = 0x45;
            ip[6] = 0x40; // don't fragment
            ip[8] = TTL;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&f.src.octets());
            ip[16..20].copy_from_slice(&f.dst.octets());
            let udp = &mut h[OFF_UDP..OFF_PAYLOAD];
            udp[0..2].copy_from_slice(&f.sport.to_be_bytes());
            udp[2..4].copy_from_slice(&f.dport.to_be_bytes());
            // UDP checksum 0: none (RFC 768), so the timestamp needs no
            // checksum update.
            ip_sums.push(sum16(&h[OFF_IP..OFF_UDP]));
            headers.push(h);
        }
        Templates { headers, ip_sums }
    }

    /// Number of flows.
    pub fn flows(&self) -> u32 {
        self.headers.len() as u32
    }

    /// Writes a frame of `size` bytes (with FCS, so `size - 4` in `buf`) of
    /// flow `stamp.flow`; returns the buffer length. Bytes past the payload
    /// header are left as they were (padding). Panics if `buf` is short.
    pub fn write(&self, buf: &mut [u8], size: u16, stamp: Stamp) -> usize {
        let len = usize::from(size) - FCS_LEN;
        let flow = stamp.flow as usize;
        let buf = &mut buf[..len];
        buf[..HEADERS_LEN].copy_from_slice(&self.headers[flow]);
        let ip_len = (len - OFF_IP) as u16;
        let udp_len = (len - OFF_UDP) as u16;
        buf[OFF_IP + 2..OFF_IP + 4].copy_from_slice(&ip_len.to_be_bytes());
        let csum = fold(self.ip_sums[flow] + u32::from(ip_len));
        buf[OFF_IP + 10..OFF_IP + 12].copy_from_slice(&(!csum).to_be_bytes());
        buf[OFF_UDP + 4..OFF_UDP + 6].copy_from_slice(&udp_len.to_be_bytes());
        let p = &mut buf[OFF_PAYLOAD..OFF_PAYLOAD + PAYLOAD_HEADER_LEN];
        p[0..2].copy_from_slice(&MAGIC);
        p[2..6].copy_from_slice(&stamp.flow.to_be_bytes());
        p[6..10].copy_from_slice(&stamp.seq.to_be_bytes());
        p[10..18].copy_from_slice(&stamp.tx_ns.to_be_bytes());
        len
    }

    /// Rewrites the TX timestamp of a frame built by [`Templates::write`].
    pub fn restamp(buf: &mut [u8], tx_ns: u64) {
        buf[OFF_TS..OFF_TS + 8].copy_from_slice(&tx_ns.to_be_bytes());
    }
}

/// The payload header of a received frame, if it is an IPv4/UDP test frame
/// (IHL 5) with our magic.
pub fn parse(frame: &[u8]) -> Option<Stamp> {
    let p = frame.get(OFF_PAYLOAD..OFF_PAYLOAD + PAYLOAD_HEADER_LEN)?;
    if frame[12..14] != [0x08, 0x00] || frame[OFF_IP] != 0x45 || frame[OFF_IP + 9] != 17 {
        return None;
    }
    if p[0..2] != MAGIC {
        return None;
    }
    let u32_at = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&p[10..18]);
    Some(Stamp {
        flow: u32_at(2),
        seq: u32_at(6),
        tx_ns: u64::from_be_bytes(ts),
    })
}

/// The IPv4 TTL of a frame (for checking that a router decremented it).
pub fn ttl(frame: &[u8]) -> Option<u8> {
    frame.get(OFF_IP + 8).copied()
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(n: u32) -> FlowSet {
        FlowSet {
            count: n,
            src: Ipv4Addr::new(198, 18, 1, 1),
            dst: Ipv4Addr::new(198, 19, 1, 1),
        }
    }

    #[test]
    fn sixty_four_byte_frame_is_exact() {
        let t = Templates::new(&flows(1), Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let mut buf = [0xaau8; 100];
        let stamp = Stamp {
            flow: 0,
            seq: 7,
            tx_ns: 0x0102_0304_0506_0708,
        };
        assert_eq!(t.write(&mut buf, 64, stamp), 60);
        let want: [u8; 60] = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, // IPv4 (csum below)
            198, 18, 1, 1, 198, 19, 1, 1, //
            0x04, 0x00, 0x0f, 0xa0, 0, 26, 0, 0, // UDP 1024 -> 4000, len 26
            0x4c, 0x52, 0, 0, 0, 0, 0, 0, 0, 7, // magic, flow 0, seq 7
            1, 2, 3, 4, 5, 6, 7, 8, // tx_ns
        ];
        let mut got = buf[..60].to_vec();
        // The header checksum must verify: the sum over the header is 0xffff.
        assert_eq!(fold(sum16(&got[14..34])), 0xffff);
        got[24] = 0;
        got[25] = 0;
        assert_eq!(got, want);
        assert_eq!(buf[60], 0xaa, "writes nothing past the frame");
        assert_eq!(parse(&buf[..60]), Some(stamp));
    }

    #[test]
    fn every_size_round_trips_with_a_valid_checksum() {
        let fs = flows(300);
        let t = Templates::new(&fs, Mac::default(), Mac::default());
        let mut buf = vec![0u8; 2048];
        for size in [64u16, 65, 128, 594, 1024, 1518] {
            for flow in [0, 63, 64, 299] {
                let s = Stamp {
                    flow,
                    seq: u32::MAX,
                    tx_ns: 42,
                };
                let len = t.write(&mut buf, size, s);
                assert_eq!(len, usize::from(size) - 4);
                let f = &buf[..len];
                assert_eq!(fold(sum16(&f[14..34])), 0xffff, "size {size} flow {flow}");
                assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), len - 14);
                assert_eq!(usize::from(u16::from_be_bytes([f[38], f[39]])), len - 34);
                assert_eq!(parse(f), Some(s));
                let fl = fs.flow(flow);
                assert_eq!(&f[26..30], &fl.src.octets());
                assert_eq!(&f[30..34], &fl.dst.octets());
            }
        }
        Templates::restamp(&mut buf, 99);
        assert_eq!(parse(&buf[..60]).map(|s| s.tx_ns), Some(99));
    }

    #[test]
    fn parse_refuses_foreign_frames() {
        let t = Templates::new(&flows(1), Mac::default(), Mac::default());
        let mut buf = vec![0u8; 60];
        let s = Stamp {
            flow: 0,
            seq: 1,
            tx_ns: 1,
        };
        t.write(&mut buf, 64, s);
        assert!(parse(&buf[..59]).is_none(), "short");
        let mut arp = buf.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(parse(&arp).is_none());
        let mut tcp = buf.clone();
        tcp[23] = 6;
        assert!(parse(&tcp).is_none());
        let mut other = buf.clone();
        other[42] = 0;
        assert!(parse(&other).is_none());
    }

    #[test]
    fn imix_cycles_are_seven_four_one() {
        let c = SizeMix::Imix.cycle();
        assert_eq!(c.len(), 12);
        for (size, n) in [(64, 7), (594, 4), (1518, 1)] {
            assert_eq!(c.iter().filter(|&&s| s == size).count(), n, "{size}");
        }
        let c576 = SizeMix::Imix576.cycle();
        assert_eq!(c576.iter().filter(|&&s| s == 576).count(), 4);
        // (7*64 + 4*594 + 1518) / 12
        assert!((SizeMix::Imix.mean() - 361.833).abs() < 0.01);
        assert_eq!("imix".parse::<SizeMix>(), Ok(SizeMix::Imix));
        assert_eq!("128".parse::<SizeMix>(), Ok(SizeMix::Fixed(128)));
        assert!("63".parse::<SizeMix>().is_err());
        assert!("1519".parse::<SizeMix>().is_err());
    }

    #[test]
    fn flows_are_distinct_and_stay_in_the_benchmark_range() {
        let fs = flows(5000);
        assert!(fs.validate().is_ok());
        let mut seen = std::collections::HashSet::new();
        for i in 0..fs.count {
            let f = fs.flow(i);
            assert!(in_bench_net(f.src) && in_bench_net(f.dst));
            assert!(seen.insert((f.src, f.dst, f.sport, f.dport)));
        }
        assert_eq!(fs.sources().len(), 64);
        assert_eq!(fs.destinations().len(), 64);
        assert_eq!(flows(1).destinations(), vec![Ipv4Addr::new(198, 19, 1, 1)]);
        assert_eq!(flows(65).destinations().len(), 2);
        let outside = FlowSet {
            count: 10,
            src: Ipv4Addr::new(198, 19, 255, 250),
            dst: Ipv4Addr::new(198, 18, 0, 1),
        };
        assert!(outside.validate().is_err());
        assert!(flows(0).validate().is_err());
        assert!(flows(MAX_FLOWS + 1).validate().is_err());
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: Mac = "02:00:0a:0B:00:ff".parse().unwrap();
        assert_eq!(m.0, [2, 0, 10, 11, 0, 255]);
        assert_eq!(m.to_string(), "02:00:0a:0b:00:ff");
        assert!("02:00:0a:0b:00".parse::<Mac>().is_err());
        assert!("02:00:0a:0b:00:ff:1".parse::<Mac>().is_err());
    }
}
