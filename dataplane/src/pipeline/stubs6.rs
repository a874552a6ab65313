//! TEMPORARY: stand-ins for the IPv6 pieces being written on other
//! branches (NDP and the neighbour stage, the IPv6 replies, IPv6 conntrack),
//! with their final signatures, so that the IPv6 path builds. Removed when
//! those land.
#![allow(dead_code, unused_variables, clippy::too_many_arguments)]

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId};
use crate::tables::Tables;
use crate::tables6::NextHop6;
use crate::trace::Tracer;

use super::{Outcome, State};

pub(super) mod reply6 {
    use crate::addr::Mac;

    pub fn icmp6_error(
        buf: &mut [u8],
        frame_len: usize,
        src: u128,
        src_mac: Mac,
        dst_mac: Mac,
        msg_type: u8,
        code: u8,
        param: u32,
    ) -> Option<usize> {
        None
    }

    pub fn may_send_error6(proto: u8, icmp_type: Option<u8>, dst: u128, src: u128) -> bool {
        false
    }

    pub fn tcp_reset6(
        buf: &mut [u8],
        frame_len: usize,
        l4_off: usize,
        src_mac: Mac,
        dst_mac: Mac,
    ) -> Option<usize> {
        None
    }
}

impl State {
    pub(super) fn ndp(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: &Meta) -> Outcome {
        Outcome::drop(DropReason::NdpInvalid)
    }

    pub(super) fn output6<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        nh_id: u32,
        nh: NextHop6,
        out: PortId,
        forwarded: bool,
        tr: &mut T,
    ) -> Result<Outcome, u16> {
        Ok(Outcome::drop(DropReason::NeighbourUnresolved))
    }
}

impl super::Pipeline {
    /// Stand-in: the NDP branch gives the real one.
    pub fn learn_neighbour6(&mut self, addr: u128, mac: crate::addr::Mac, port: PortId) {}
}
