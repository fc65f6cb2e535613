//! `--report DIR`: a Markdown report with PNG plots: throughput over time, and (for `--ramp`)
//! latency percentiles against offered load. Plot labels use DejaVu Sans from the system
//! (Debian's fonts-dejavu-core); without it the report is written with its tables only.

use crate::output::{RampReport, Summary};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plot labels once; false if none is installed.
fn font_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn plot_err<E: std::fmt::Display>(e: E) -> String {
    format!("plot failed: {e}")
}

/// The chart both plots draw on: a 900x420 PNG with a caption, labelled axes from 0 to the
/// given maxima, whatever `draw` adds, and a legend of the labelled series if asked.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn line_chart(
    path: &Path,
    caption: &str,
    (x_max, y_max): (f64, f64),
    (x_desc, y_desc): (&str, &str),
    legend: bool,
    draw: impl FnOnce(&mut Chart) -> Result<(), String>,
) -> Result<(), String> {
    let root = BitMapBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(plot_err)?;
    draw(&mut chart)?;
    if legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}

/// Throughput per second across the whole run (ramp steps one after another).
fn plot_throughput(path: &Path, summaries: &[Summary]) -> Result<(), String> {
    let points: Vec<(f64, f64)> = summaries
        .iter()
        .flat_map(|s| {
            s.timeline_ops_per_s
                .iter()
                .take(s.measured_s.ceil() as usize)
        })
        .enumerate()
        .map(|(i, n)| (i as f64 + 0.5, *n as f64))
        .collect();
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let x_max = points.len().max(1) as f64;
    line_chart(
        path,
        "Throughput over time",
        (x_max, y_max),
        ("seconds measured", "ops/s"),
        false,
        |chart| {
            chart
                .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
                .map_err(plot_err)?;
            Ok(())
        },
    )
}

/// p50/p90/p99/p99.9 against offered load, one point per ramp step.
fn plot_latency_vs_load(path: &Path, steps: &[Summary]) -> Result<(), String> {
    let x = |s: &Summary| s.offered_rate_ops_per_s.unwrap_or(0) as f64;
    let x_max = steps.iter().map(x).fold(1.0, f64::max) * 1.05;
    let y_max = steps
        .iter()
        .map(|s| s.latency_ms.p999)
        .fold(0.001, f64::max)
        * 1.2;
    type Pick = fn(&Summary) -> f64;
    let series: [(&str, RGBColor, Pick); 4] = [
        ("p50", GREEN, |s| s.latency_ms.p50),
        ("p90", BLUE, |s| s.latency_ms.p90),
        ("p99", RED, |s| s.latency_ms.p99),
        ("p99.9", MAGENTA, |s| s.latency_ms.p999),
    ];
    let caption = "Latency percentiles vs offered load";
    line_chart(
        path,
        caption,
        (x_max, y_max),
        ("offered ops/s", "latency, ms"),
        true,
        |chart| {
            for (name, color, pick) in series {
                let pts: Vec<(f64, f64)> = steps.iter().map(|s| (x(s), pick(s))).collect();
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// Writes `report.md` (and the plots) into `dir`.
pub fn write(
    dir: &Path,
    command: &str,
    summaries: &[Summary],
    ramp: Option<&RampReport>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut md = String::new();
    let _ = writeln!(md, "# ringkeeper bench report\n\nCommand: `{command}`\n");
    if let Some(r) = ramp {
        match r.highest_sustainable_ops_per_s {
            Some(rate) => {
                let _ = writeln!(
                    md,
                    "**Highest sustainable rate: {rate} ops/s** (p99 <= {} ms, no errors).\n",
                    r.slo_p99_ms
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "**No step met p99 <= {} ms without errors.**\n",
                    r.slo_p99_ms
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "| load | throughput ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
    for s in summaries {
        let load = match (s.offered_rate_ops_per_s, s.outstanding) {
            (Some(rate), _) => format!("{rate} ops/s offered"),
            (None, Some(n)) => format!("{n} outstanding"),
            _ => String::new(),
        };
        let errors = s.errors_text();
        let l = &s.latency_ms;
        let _ = writeln!(
            md,
            "| {load} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {errors} |",
            s.throughput_ops_per_s, l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    md.push('\n');
    if font_ready() {
        plot_throughput(&dir.join("throughput.png"), summaries)?;
        let _ = writeln!(md, "![throughput over time](throughput.png)\n");
        if ramp.is_some() && !summaries.is_empty() {
            plot_latency_vs_load(&dir.join("latency-vs-load.png"), summaries)?;
            let _ = writeln!(
                md,
                "![latency percentiles vs offered load](latency-vs-load.png)\n"
            );
        }
    } else {
        let _ = writeln!(
            md,
            "Plots skipped: no font for their labels (install Debian's fonts-dejavu-core).\n"
        );
    }
    std::fs::write(dir.join("report.md"), md).map_err(|e| format!("cannot write report.md: {e}"))
}
