//! Checks on arbitrary bytes for the IPv6 wire views, shared by the
//! proptests (`tests/wire_ipv6.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/wire_ipv6.rs`): nothing panics after `check_len`,
//! the extension header walk stays inside the payload, NDP messages that
//! parse emit back to the same message, ICMPv6 errors built about any
//! bytes are well formed and at most 1280 bytes.

use dataplane::wire::{icmpv6, ipv6, ndp};

/// Runs every IPv6 parser over `data`; panics on a broken invariant.
pub fn fuzz_one(data: &[u8]) {
    // The fixed header and its chain.
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.hop_limit(),
        );
        let _ = (p.src_addr(), p.dst_addr());
        let _ = ipv6::AddrClass::of(p.src_addr()).forwardable_src();
        let _ = ipv6::AddrClass::of(p.dst_addr()).forwardable_dst();
        assert_eq!(p.payload().len(), usize::from(p.payload_len()));
        check_chain(p.next_header(), p.payload());
        let r = ipv6::Repr::parse(&p);
        let mut out = [0u8; 40];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
        assert_eq!(
            out[4..],
            data[4..40],
            "emit keeps all but version/class/flow"
        );
    }
    // Any bytes as an extension header chain.
    if let Some((&nh, rest)) = data.split_first() {
        check_chain(nh, rest);
    }
    // ICMPv6.
    let (src, dst) = addrs(data);
    if let Ok(p) = icmpv6::Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq(),
        );
        let _ = (p.mtu(), p.pointer(), p.payload().len());
        let _ = p.verify_checksum(src, dst);
        if let Some(e) = icmpv6::EchoRepr::parse(&p) {
            let mut buf = data.to_vec();
            let mut q = icmpv6::Packet::new_unchecked(&mut buf[..]);
            e.emit(&mut q, src, dst);
            assert!(q.verify_checksum(src, dst));
        }
        let _ = icmpv6::ErrorRepr::parse(&p);
    }
    // An ICMPv6 error about these bytes.
    let mut out = [0u8; 1400];
    let n = icmpv6::ErrorRepr::TimeExceeded(icmpv6::HOP_LIMIT_EXCEEDED)
        .emit(src, dst, 64, data, &mut out);
    assert!(n <= ipv6::MIN_MTU);
    assert_eq!(n, icmpv6::ErrorRepr::packet_len(data.len()));
    let ip = ipv6::Packet::new_checked(&out[..n]).expect("an emitted error parses");
    let p = icmpv6::Packet::new_checked(ip.payload()).expect("ICMPv6 header");
    assert!(p.verify_checksum(src, dst));
    // NDP: whatever parses emits back to itself.
    for hop_limit in [255, 64] {
        for (s, d) in [
            (src, dst),
            (0, ipv6::solicited_node(dst)),
            (0xfe80 << 112 | 1, ipv6::ALL_NODES),
        ] {
            if let Ok(r) = ndp::Repr::parse(s, d, hop_limit, data) {
                assert_eq!(hop_limit, 255);
                let mut buf = [0u8; 256];
                let n = r.emit(s, d, &mut buf);
                assert_eq!(n, r.len());
                let again = ndp::Repr::parse(s, d, 255, &buf[..n]).expect("emitted NDP parses");
                assert_eq!(normalized(again), normalized(r));
                assert!(icmpv6::Packet::new_checked(&buf[..n])
                    .unwrap()
                    .verify_checksum(s, d));
            }
        }
    }
    for o in ndp::Options::new(data) {
        let _ = o;
    }
}

/// An RA re-parsed counts only the prefixes that were kept.
fn normalized(r: ndp::Repr) -> ndp::Repr {
    match r {
        ndp::Repr::RouterAdvert(mut ra) => {
            ra.prefix_count = ra.prefix_count.min(ndp::MAX_PREFIXES);
            ndp::Repr::RouterAdvert(ra)
        }
        other => other,
    }
}

fn addrs(data: &[u8]) -> (u128, u128) {
    let mut b = [0u8; 32];
    let n = data.len().min(32);
    b[..n].copy_from_slice(&data[..n]);
    (
        u128::from_be_bytes(b[..16].try_into().unwrap()),
        u128::from_be_bytes(b[16..].try_into().unwrap()),
    )
}

fn check_chain(nh: u8, payload: &[u8]) {
    if let Ok(c) = ipv6::walk(nh, payload) {
        assert!(
            c.offset <= payload.len(),
            "offset {} of {}",
            c.offset,
            payload.len()
        );
        assert!(c.offset <= ipv6::MAX_CHAIN_BYTES + 8);
        assert!(usize::from(c.headers) <= ipv6::MAX_EXT_HEADERS);
        if let Some(f) = c.fragment {
            if !f.is_first() {
                assert_eq!(c.upper, None, "a later fragment has no upper layer");
            }
        }
        if c.upper.is_none() && c.fragment.is_none_or(|f| f.is_first()) {
            assert_eq!(c.last_next_header, ipv6::NH_NONE);
        }
    }
}
