//! The pcapng file `routerctl capture` writes, through the `pcap-file`
//! crate: a section header, one interface description block per captured
//! interface (its config name, its device, Ethernet, nanosecond
//! timestamps), and an enhanced packet block per frame with its direction
//! in `epb_flags` and, for dropped frames, the drop reason in its comment.
//! tcpdump, tshark and Wireshark read it.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

/// `epb_flags` direction bits (pcapng, section 4.3.1): inbound.
pub const EPB_INBOUND: u32 = 0b01;
/// `epb_flags` direction bits: outbound.
pub const EPB_OUTBOUND: u32 = 0b10;
/// `if_tsresol` 9: timestamps count nanoseconds.
const TSRESOL_NS: u8 = 9;

/// An interface of the file: `name` is its `if_name`, `description` its
/// `if_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInterface {
    pub name: String,
    pub description: String,
}

/// One frame for the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePacket<'a> {
    /// Index into the interfaces given to [`PcapngOut::new`].
    pub interface: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// [`EPB_INBOUND`] or [`EPB_OUTBOUND`].
    pub flags: u32,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// The bytes kept (at most the snap length).
    pub data: &'a [u8],
    /// The packet's comment (`opt_comment`).
    pub comment: Option<&'a str>,
}

/// A pcapng stream being written.
pub struct PcapngOut<W: Write> {
    w: PcapNgWriter<W>,
}

impl<W: Write> PcapngOut<W> {
    /// Writes the section header and the interface blocks.
    pub fn new(
        w: W,
        interfaces: &[FileInterface],
        snaplen: u32,
        application: &str,
    ) -> Result<Self, PcapError> {
        let shb = SectionHeaderBlock {
            endianness: Endianness::native(),
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(
                application.to_string(),
            ))],
            ..Default::default()
        };
        let mut w = PcapNgWriter::with_section_header(w, shb)?;
        for i in interfaces {
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed(&i.name)),
                    InterfaceDescriptionOption::IfDescription(Cow::Borrowed(&i.description)),
                    InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
                ],
            })?;
        }
        Ok(PcapngOut { w })
    }

    /// Writes one enhanced packet block.
    pub fn packet(&mut self, p: &FilePacket<'_>) -> Result<(), PcapError> {
        let mut options = vec![EnhancedPacketOption::Flags(p.flags)];
        if let Some(c) = p.comment {
            options.push(EnhancedPacketOption::Comment(Cow::Borrowed(c)));
        }
        self.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: p.interface,
            timestamp: Duration::from_nanos(p.ts_ns),
            original_len: p.orig_len.max(p.data.len() as u32),
            data: Cow::Borrowed(p.data),
            options,
        })?;
        Ok(())
    }

    /// Flushes what was written (a reader at the other end of a pipe sees
    /// the packets).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.get_mut().flush()
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn a_written_file_reads_back_with_names_flags_comments_and_times() {
        let ifs = vec![
            FileInterface {
                name: "wan".into(),
                description: "device r0".into(),
            },
            FileInterface {
                name: "lan".into(),
                description: "device r1".into(),
            },
        ];
        let syn = [0xabu8; 54];
        let mut out = PcapngOut::new(Vec::new(), &ifs, 1500, "routerctl test").expect("header");
        out.packet(&FilePacket {
            interface: 1,
            ts_ns: 1_700_000_000_123_456_789,
            flags: EPB_OUTBOUND,
            orig_len: 98,
            data: &[1, 2, 3, 4, 5],
            comment: None,
        })
        .expect("packet");
        out.packet(&FilePacket {
            interface: 0,
            ts_ns: 1_700_000_001_000_000_001,
            flags: EPB_INBOUND,
            orig_len: 54,
            data: &syn,
            comment: Some("drop: filter_denied (stage filter)"),
        })
        .expect("packet");
        // An interface the header did not describe is refused.
        assert!(out
            .packet(&FilePacket {
                interface: 2,
                ts_ns: 0,
                flags: 0,
                orig_len: 1,
                data: &[0],
                comment: None,
            })
            .is_err());
        let bytes = out.into_inner();

        let mut r = PcapNgReader::new(&bytes[..]).expect("a pcapng header");
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(p) = b.expect("a block") {
                packets.push(p.into_owned());
            }
        }
        let names: Vec<String> = r
            .interfaces()
            .iter()
            .map(|i| {
                assert_eq!(i.linktype, DataLink::ETHERNET);
                assert_eq!(i.snaplen, 1500);
                assert!(i
                    .options
                    .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                i.options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .expect("if_name")
            })
            .collect();
        assert_eq!(names, ["wan", "lan"]);
        assert!(r
            .section()
            .options
            .contains(&SectionHeaderOption::UserApplication(
                "routerctl test".into()
            )));
        assert_eq!(packets.len(), 2);
        let (a, b) = (&packets[0], &packets[1]);
        assert_eq!(
            (a.interface_id, a.original_len, &a.data[..]),
            (1, 98, &[1, 2, 3, 4, 5][..])
        );
        assert_eq!(a.timestamp, Duration::from_nanos(1_700_000_000_123_456_789));
        assert_eq!(a.options, vec![EnhancedPacketOption::Flags(EPB_OUTBOUND)]);
        assert_eq!((b.interface_id, &b.data[..]), (0, &syn[..]));
        assert_eq!(
            b.options,
            vec![
                EnhancedPacketOption::Flags(EPB_INBOUND),
                EnhancedPacketOption::Comment("drop: filter_denied (stage filter)".into()),
            ]
        );
    }
}
