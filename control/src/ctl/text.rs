//! What `routerctl` prints: tables in the spirit of `vppctl show interface`
//! and `show errors`, and `conntrack -L` lines.

use std::fmt::Write;

use super::api::{
    DryRunReport, FamilyStats, FlowEntry, NeighbourEntry, ReloadSummary, RuntimeStats,
    RuntimeTotals, StatsSnapshot,
};

/// Left-aligned text columns and right-aligned numbers, two spaces apart.
fn table(head: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if right[i] {
                let _ = write!(l, "{c:>w$}", w = w[i]);
            } else {
                let _ = write!(l, "{c:<w$}", w = w[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(
        &mut out,
        &head.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    for r in rows {
        line(&mut out, r);
    }
    out
}

/// `routerctl stats` without `--json`.
pub fn stats(s: &StatsSnapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Interfaces (counters for {}s)", s.uptime_secs);
    let rows: Vec<Vec<String>> = s
        .interfaces
        .iter()
        .map(|(n, i)| {
            vec![
                n.clone(),
                i.device.clone(),
                i.rx_packets.to_string(),
                i.rx_bytes.to_string(),
                i.tx_packets.to_string(),
                i.tx_bytes.to_string(),
                i.rx_dropped.to_string(),
                i.tx_dropped.to_string(),
            ]
        })
        .collect();
    o.push_str(&table(
        &[
            "name",
            "device",
            "rx packets",
            "rx bytes",
            "tx packets",
            "tx bytes",
            "rx dropped",
            "tx dropped",
        ],
        &rows,
        &[false, false, true, true, true, true, true, true],
    ));

    if !s.workers.is_empty() {
        o.push_str("\nWorkers\n");
        let rows: Vec<Vec<String>> = s
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.worker.to_string(),
                    w.core.to_string(),
                    w.loops.to_string(),
                    w.busy_loops.to_string(),
                    format!("{:.1}%", w.busy_share * 100.0),
                    w.rx_packets.to_string(),
                    w.forwarded.to_string(),
                    w.handed_off.to_string(),
                    w.handed_in.to_string(),
                    w.conntrack_entries.to_string(),
                ]
            })
            .collect();
        let mut total = vec![String::new(); 10];
        total[0] = "total".into();
        for (i, v) in [
            (2, s.workers.iter().map(|w| w.loops).sum::<u64>()),
            (3, s.workers.iter().map(|w| w.busy_loops).sum()),
            (5, s.workers.iter().map(|w| w.rx_packets).sum()),
            (6, s.workers.iter().map(|w| w.forwarded).sum()),
            (7, s.workers.iter().map(|w| w.handed_off).sum()),
            (8, s.workers.iter().map(|w| w.handed_in).sum()),
            (9, s.workers.iter().map(|w| w.conntrack_entries).sum()),
        ] {
            total[i] = v.to_string();
        }
        let rows: Vec<Vec<String>> = if rows.len() > 1 {
            rows.into_iter().chain([total]).collect()
        } else {
            rows
        };
        o.push_str(&table(
            &[
                "worker",
                "core",
                "loops",
                "busy loops",
                "busy",
                "rx packets",
                "forwarded",
                "handed off",
                "handed in",
                "flows",
            ],
            &rows,
            &[true; 10],
        ));
    }

    o.push_str("\nDrops\n");
    let rows: Vec<Vec<String>> = s
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| vec![n.to_string(), r.clone()])
        .collect();
    if rows.is_empty() {
        o.push_str("  none\n");
    } else {
        o.push_str(&table(&["count", "reason"], &rows, &[true, false]));
    }

    o.push_str("\nRules\n");
    let rows: Vec<Vec<String>> = s
        .rules
        .iter()
        .map(|r| {
            vec![
                r.table.clone(),
                r.chain.clone(),
                r.position
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "policy".into()),
                r.action.clone(),
                r.packets.to_string(),
                r.bytes.to_string(),
                r.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    o.push_str(&table(
        &[
            "table", "chain", "rule", "action", "packets", "bytes", "comment",
        ],
        &rows,
        &[false, false, true, false, true, true, false],
    ));

    let c = &s.conntrack;
    o.push_str("\nConnection tracking\n");
    let _ = writeln!(
        o,
        "  entries            {} (max {})",
        c.entries, c.max_entries
    );
    let _ = writeln!(o, "  tracked packets    {}", c.tracked_packets);
    let _ = writeln!(o, "  untracked packets  {}", c.untracked_packets);
    let join = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(o, "  by state           {}", join(&c.by_state));
    let _ = writeln!(o, "  by protocol        {}", join(&c.by_protocol));
    let _ = writeln!(
        o,
        "  inserted {}, expired {}, early dropped {}, refused (table full) {}",
        c.inserted, c.expired, c.early_dropped, c.table_full
    );

    if !s.afxdp.is_empty() {
        o.push_str("\nAF_XDP rings\n");
        let rows: Vec<Vec<String>> = s
            .afxdp
            .iter()
            .map(|(n, r)| {
                vec![
                    n.clone(),
                    r.fill_ring_empty.to_string(),
                    r.tx_ring_full.to_string(),
                    r.rx_dropped.to_string(),
                    r.rx_ring_full.to_string(),
                    r.rx_invalid_descs.to_string(),
                    r.tx_invalid_descs.to_string(),
                ]
            })
            .collect();
        o.push_str(&table(
            &[
                "interface",
                "fill ring empty",
                "tx ring full",
                "rx dropped",
                "rx ring full",
                "rx invalid",
                "tx invalid",
            ],
            &rows,
            &[false, true, true, true, true, true, true],
        ));
    }

    let p = &s.path;
    o.push_str("\nPackets\n");
    for (k, v) in [
        ("forwarded", p.forwarded),
        ("to host", p.to_host),
        ("consumed", p.consumed),
        ("replies generated", p.generated),
        ("icmp errors sent", p.icmp_errors_sent),
        ("icmp errors rate limited", p.icmp_errors_rate_limited),
        ("tcp resets sent", p.tcp_resets_sent),
        ("arp replies sent", p.arp_replies_sent),
        ("arp replies received", p.arp_replies_received),
        ("arp requests sent", p.arp_requests_sent),
    ] {
        let _ = writeln!(o, "  {k:<26} {v}");
    }

    o.push_str("\nBy family (ipv4: the total less ipv6, ARP and other frames included)\n");
    let row = |name: &str, f: &FamilyStats| {
        vec![
            name.to_string(),
            f.rx.to_string(),
            f.forwarded.to_string(),
            f.to_host.to_string(),
            f.dropped.to_string(),
        ]
    };
    o.push_str(&table(
        &["family", "rx", "forwarded", "to host", "dropped"],
        &[row("ipv4", &s.ipv4), row("ipv6", &s.ipv6)],
        &[false, true, true, true, true],
    ));

    let n = &s.ndp;
    o.push_str("\nNeighbour discovery\n");
    for (k, v) in [
        ("solicits received", n.solicits_received),
        ("adverts sent", n.adverts_sent),
        ("adverts received", n.adverts_received),
        ("solicits sent", n.solicits_sent),
        ("resolution failures", n.resolution_failures),
        ("router adverts sent", n.ra_sent),
        ("router solicits received", n.rs_received),
    ] {
        let _ = writeln!(o, "  {k:<26} {v}");
    }
    o
}

/// `routerctl stats runtime` without `--json`: per worker (and summed when
/// there are several), a line of loops and packets, then one row per phase
/// with its cycles, its share of the loop time, and cycles and
/// nanoseconds per packet.
pub fn runtime(r: &RuntimeStats) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Runtime (TSC {:.3} GHz; cycles since start or the last clear)",
        r.tsc_hz as f64 / 1e9
    );
    let hz = r.tsc_hz.max(1) as f64;
    let block = |o: &mut String, title: String, t: &RuntimeTotals| {
        let busy_share = if t.loops == 0 {
            0.0
        } else {
            100.0 * t.busy_loops as f64 / t.loops as f64
        };
        let vectors = if t.busy_loops == 0 {
            0.0
        } else {
            t.packets as f64 / t.busy_loops as f64
        };
        let _ = writeln!(
            o,
            "\n{title}: {:.3} s, {} loops, {} busy ({busy_share:.1}%), {} packets, \
             {vectors:.1} packets per busy loop",
            t.total_cycles as f64 / hz,
            t.loops,
            t.busy_loops,
            t.packets
        );
        let per_packet = |c: u64| {
            if t.packets == 0 {
                ("-".to_string(), "-".to_string())
            } else {
                let c = c as f64 / t.packets as f64;
                (format!("{c:.1}"), format!("{:.1}", c / hz * 1e9))
            }
        };
        let share = |c: u64| {
            if t.total_cycles == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * c as f64 / t.total_cycles as f64)
            }
        };
        let busy = t.total_cycles.saturating_sub(t.cycles.idle);
        let rows: Vec<Vec<String>> = (t.cycles.phases().into_iter())
            .chain([("busy", busy), ("total", t.total_cycles)])
            .map(|(name, c)| {
                let (cpp, npp) = per_packet(c);
                vec![name.to_string(), c.to_string(), share(c), cpp, npp]
            })
            .collect();
        o.push_str(&table(
            &["phase", "cycles", "share", "cycles/pkt", "ns/pkt"],
            &rows,
            &[false, true, true, true, true],
        ));
    };
    for w in &r.workers {
        let core = w
            .core
            .map_or("not pinned".to_string(), |c| format!("core {c}"));
        block(&mut o, format!("worker {} ({core})", w.worker), &w.counts);
    }
    if r.workers.len() > 1 {
        let title = format!("all {} workers", r.workers.len());
        block(&mut o, title, &r.total);
    }
    o
}

/// One neighbour as `ip neigh` prints it: `198.19.0.2 dev lan lladdr
/// 02:00:00:00:00:02 REACHABLE`.
pub fn neighbour_line(n: &NeighbourEntry) -> String {
    format!(
        "{} dev {} lladdr {} {}",
        n.address,
        n.interface,
        n.mac,
        n.state.to_uppercase()
    )
}

/// One flow as `conntrack -L` prints it.
pub fn conntrack_line(f: &FlowEntry) -> String {
    let mut l = format!(
        "{:<8} {} {} ",
        f.protocol.replace(' ', "-"),
        f.protonum,
        f.timeout
    );
    if f.protonum == 6 {
        l.push_str(&f.state);
        l.push(' ');
    }
    let tuple = |src, dst, sport: u16, dport: u16| match f.protonum {
        6 | 17 => format!("src={src} dst={dst} sport={sport} dport={dport}"),
        1 | 58 => format!("src={src} dst={dst} id={sport}"),
        _ => format!("src={src} dst={dst}"),
    };
    let _ = write!(
        l,
        "{} packets={} bytes={} ",
        tuple(f.src, f.dst, f.sport, f.dport),
        f.orig_packets,
        f.orig_bytes
    );
    if !f.seen_reply {
        l.push_str("[UNREPLIED] ");
    }
    let _ = write!(
        l,
        "{} packets={} bytes={}",
        tuple(f.reply.src, f.reply.dst, f.reply.sport, f.reply.dport),
        f.reply_packets,
        f.reply_bytes
    );
    if f.assured {
        l.push_str(" [ASSURED]");
    }
    l
}

/// What a successful reload prints.
pub fn reload_ok(r: &ReloadSummary) -> String {
    format!(
        "OK: reloaded {}: {} interfaces, {} routes, {} rules; {} connection entries kept",
        r.path.display(),
        r.interfaces,
        r.routes,
        r.rules,
        r.conntrack_entries
    )
}

/// What `reload --dry-run` prints.
pub fn dry_run(r: &DryRunReport) -> String {
    format!(
        "{} against the running config ({}):\n{}",
        r.path.display(),
        r.running.display(),
        r.diff
    )
}
