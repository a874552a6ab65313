//! The comparison chart as a PNG: one horizontal bar per system (median
//! no-loss throughput) with a line from the lowest to the highest run.
//! Drawn with plotters' bitmap backend; text uses a built-in 5x7 bitmap
//! font, so no font library (fontconfig, freetype) is needed.

use std::path::Path;

use plotters::prelude::*;

use super::compare::{Summary, System};
use super::LinerateError;

/// Rows of a 5x7 glyph, bit 4 the leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        '.' => [0, 0, 0, 0, 0, 0x0c, 0x0c],
        ',' => [0, 0, 0, 0, 0x0c, 0x04, 0x08],
        ':' => [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
        '-' => [0, 0, 0, 0x1f, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '=' => [0, 0, 0x1f, 0, 0x1f, 0, 0],
        _ => [0; 7],
    }
}

/// Pixels of `text` at `scale`: width, height.
pub fn text_size(text: &str, scale: i32) -> (i32, i32) {
    (text.chars().count() as i32 * 6 * scale, 7 * scale)
}

/// Draws `text` with its top-left corner at `(x, y)`.
fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    (x, y): (i32, i32),
    scale: i32,
    color: &RGBColor,
) -> Result<(), String> {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i32 * 6 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits >> (4 - col) & 1 == 1 {
                    let px = gx + col * scale;
                    let py = y + row as i32 * scale;
                    area.draw(&Rectangle::new(
                        [(px, py), (px + scale - 1, py + scale - 1)],
                        color.filled(),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

fn bar_color(s: System) -> RGBColor {
    match s {
        System::Generator => RGBColor(150, 150, 150),
        System::RouterdUntracked => RGBColor(31, 119, 180),
        System::RouterdTracked => RGBColor(107, 174, 214),
        System::Linux => RGBColor(214, 39, 40),
        System::LinuxConntrack => RGBColor(255, 127, 14),
        System::LinuxNotrack => RGBColor(250, 180, 90),
        System::Ovs => RGBColor(44, 160, 44),
        System::OvsTracked => RGBColor(152, 223, 138),
    }
}

/// One bar: a label, its system's colour, the median and each run, in the
/// chart's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Text left of the bar.
    pub label: String,
    /// Colour by system.
    pub system: System,
    /// Bar length.
    pub median: f64,
    /// The whisker spans these.
    pub runs: Vec<f64>,
}

/// Draws the summaries of one frame size to `path` (PNG).
pub fn draw(path: &Path, title: &str, rows: &[Summary]) -> Result<(), LinerateError> {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: r.system.name().to_string(),
            system: r.system,
            median: r.median_pps / 1e6,
            runs: r.runs_pps.iter().map(|p| p / 1e6).collect(),
        })
        .collect();
    draw_bars(
        path,
        title,
        "MPPS, NO LOSS (RFC 2544). BAR: MEDIAN, LINE: MIN-MAX",
        &bars,
        3,
    )
}

/// Draws horizontal bars to `path` (PNG); `axis` is the caption under the
/// axis, `decimals` those of the value labels.
pub fn draw_bars(
    path: &Path,
    title: &str,
    axis: &str,
    bars: &[Bar],
    decimals: usize,
) -> Result<(), LinerateError> {
    draw_inner(path, title, axis, bars, decimals)
        .map_err(|e| LinerateError::Setup(format!("chart: {e}")))
}

fn draw_inner(
    path: &Path,
    title: &str,
    axis: &str,
    rows: &[Bar],
    decimals: usize,
) -> Result<(), String> {
    const W: u32 = 1100;
    const ROW: i32 = 46;
    let left = 400;
    let right = 120;
    let top = 60;
    let h = (top + ROW * rows.len() as i32 + 80) as u32;
    let root = BitMapBackend::new(path, (W, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let black = RGBColor(0, 0, 0);
    let grey = RGBColor(200, 200, 200);
    draw_text(&root, title, (16, 16), 2, &black)?;

    let max = rows
        .iter()
        .flat_map(|r| r.runs.iter().copied().chain([r.median]))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    // Ticks in steps of 1, 2, 2.5 or 5 times a power of ten: at most 8.
    let mut step = 10f64.powf((max / 8.0).log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max / (step * m) <= 8.0 {
            step *= m;
            break;
        }
    }
    let top_val = (max / step).ceil() * step;
    let plot_w = (W as i32 - left - right) as f64;
    let x_of = |v: f64| left + (v.max(0.0) / top_val * plot_w).round() as i32;
    let bottom = top + ROW * rows.len() as i32;
    let tick_decimals = if step >= 1.0 { 0 } else { 2 };
    let mut i = 0;
    loop {
        let v = step * f64::from(i);
        if v > top_val * 1.0001 {
            break;
        }
        let x = x_of(v);
        root.draw(&PathElement::new(vec![(x, top - 4), (x, bottom)], grey))
            .map_err(|e| e.to_string())?;
        let label = format!("{v:.tick_decimals$}");
        let (tw, _) = text_size(&label, 2);
        draw_text(&root, &label, (x - tw / 2, bottom + 8), 2, &black)?;
        i += 1;
    }
    draw_text(&root, axis, (16, bottom + 34), 2, &black)?;

    for (i, r) in rows.iter().enumerate() {
        let y = top + ROW * i as i32;
        draw_text(&root, &r.label, (12, y + 14), 2, &black)?;
        let color = bar_color(r.system);
        root.draw(&Rectangle::new(
            [(left, y + 8), (x_of(r.median).max(left + 1), y + ROW - 8)],
            color.filled(),
        ))
        .map_err(|e| e.to_string())?;
        let lo = r.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.runs.iter().copied().fold(0.0f64, f64::max);
        if lo.is_finite() && hi > lo {
            let ym = y + ROW / 2;
            root.draw(&PathElement::new(
                vec![(x_of(lo), ym), (x_of(hi), ym)],
                black.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
            for x in [x_of(lo), x_of(hi)] {
                root.draw(&PathElement::new(
                    vec![(x, ym - 6), (x, ym + 6)],
                    black.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            }
        }
        let value = format!("{:.decimals$}", r.median);
        draw_text(
            &root,
            &value,
            (x_of(r.median.max(hi)) + 8, y + 16),
            2,
            &black,
        )?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_fit_five_columns_and_text_is_measured() {
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:-+/()%= ".chars() {
            assert!(glyph(c).iter().all(|r| *r < 32), "{c}");
        }
        assert_ne!(glyph('a'), [0; 7], "lower case draws as upper case");
        assert_eq!(text_size("abc", 2), (36, 14));
    }

    #[test]
    fn draws_a_png() {
        let rows = vec![
            Summary {
                system: System::RouterdUntracked,
                size: "64".into(),
                median_pps: 900_000.0,
                runs_pps: vec![800_000.0, 900_000.0, 950_000.0],
                generator_limited: false,
            },
            Summary {
                system: System::Linux,
                size: "64".into(),
                median_pps: 400_000.0,
                runs_pps: vec![400_000.0],
                generator_limited: false,
            },
        ];
        let path = std::env::temp_dir().join(format!("linerate-chart-{}.png", std::process::id()));
        draw(&path, "test chart", &rows).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 1000);
    }
}
