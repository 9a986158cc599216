//! The read-latency figure: one curve per store and load, "fraction of reads taking at least x"
//! against latency x, both axes logarithmic, so that medians and the far tail read off the same
//! picture.

use std::path::Path;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One curve.
pub struct Series<'a> {
    /// Legend text.
    pub label: String,
    /// Per-read latencies, nanoseconds.
    pub hist: &'a Histogram<u64>,
    /// Index into the palette (one color per store).
    pub color: usize,
    /// Dashed (used for runs with a concurrent writer).
    pub dashed: bool,
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0x66, 0x66, 0x66),
    RGBColor(0xe7, 0x29, 0x8a),
];

/// Points of the complementary CDF: (latency, fraction of samples at or above it).
fn ccdf(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = hist.len() as f64;
    let mut below = 0u64;
    let mut points = Vec::new();
    for v in hist.iter_recorded() {
        let at_least = (hist.len() - below) as f64 / total;
        points.push((v.value_iterated_to().max(1) as f64, at_least));
        below += v.count_since_last_iteration();
    }
    points
}

fn ns_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

/// Writes the figure as SVG to `path`.
pub fn read_latency(path: &Path, title: &str, series: &[Series<'_>]) -> anyhow::Result<()> {
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|s| ccdf(s.hist)).collect();
    let all = || curves.iter().flatten();
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1.0);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_min = all().map(|p| p.1).fold(1.0, f64::min);
    // An empty plot has no range (and plotters never finishes a log axis of infinite width).
    anyhow::ensure!(
        x_min.is_finite() && x_max.is_finite(),
        "plot {}: nothing to draw",
        path.display()
    );
    let x_range = (x_min / 1.5)..(x_max * 1.5);
    let y_range = (y_min / 2.0)..1.2;
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("read latency (log scale)")
        .y_desc("fraction of reads taking at least x (log scale)")
        .x_label_formatter(&|v| ns_label(*v))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (s, points) in series.iter().zip(curves) {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = color.stroke_width(if s.dashed { 2 } else { 3 });
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        }
        .map_err(|e| err(&e))?;
        drawn.label(s.label.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One line of [`cost_vs_objects`]: (object count, nanoseconds per read) points.
pub struct CostSeries {
    /// Legend text.
    pub label: String,
    /// (objects, ns per read), in increasing object count.
    pub points: Vec<(f64, f64)>,
    /// Index into the palette (one color per store).
    pub color: usize,
    /// Dashed (used for a second configuration of the same store).
    pub dashed: bool,
}

/// Writes a figure of read cost against object count (x logarithmic, y linear from zero) as SVG
/// to `path`: one line per store and configuration.
pub fn cost_vs_objects(path: &Path, title: &str, series: &[CostSeries]) -> anyhow::Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1.0);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all()
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(1.0, f64::max);
    anyhow::ensure!(
        x_min.is_finite() && x_max > 0.0,
        "plot {}: nothing to draw",
        path.display()
    );
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            ((x_min / 1.5)..(x_max * 1.5)).log_scale(),
            0.0..(y_max * 1.15),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("objects in the cache (log scale)")
        .y_desc("time per read per thread")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| ns_label(*v))
        .draw()
        .map_err(|e| err(&e))?;
    for s in series {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = color.stroke_width(if s.dashed { 2 } else { 3 });
        let points = s.points.iter().copied().filter(|p| p.1.is_finite());
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        }
        .map_err(|e| err(&e))?;
        drawn.label(s.label.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
        });
        chart
            .draw_series(
                s.points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
