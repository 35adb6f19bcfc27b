//! `--plot FILE.svg`: latency by percentile, one curve per operation kind.
//!
//! The x axis is logarithmic in `1 / (1 - percentile)` (0%, 90%, 99%, 99.9%, ...), as in
//! HdrHistogram's plots, so the tail is as readable as the median; it stops where the
//! histogram runs out of samples (`10^x <= count`). The y axis is logarithmic, in
//! microseconds, so a single slow outlier does not flatten every curve.
//! SVG only (plotters' SVG backend, no font dependencies).

use plotters::prelude::*;

use crate::recorder::Hist;

/// Largest x drawn: 99.9999%.
const MAX_NINES: f64 = 6.0;

/// The curve of `h`: (x = -log10(1 - q), latency in microseconds).
pub fn percentile_curve(h: &Hist) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let x_max = (h.len() as f64).log10().clamp(1.0, MAX_NINES);
    let steps = (x_max * 50.0) as usize;
    let mut pts: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = x_max * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1e3)
        })
        .collect();
    pts.push((x_max, h.max() as f64 / 1e3));
    pts
}

fn x_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let nines = x.round() as usize;
    format!("{p:.prec$}%", prec = nines.saturating_sub(2))
}

/// Draws the curves of `(name, histogram)` to the SVG file `path`.
pub fn write_svg(
    path: &std::path::Path,
    title: &str,
    series: &[(&str, &Hist)],
) -> Result<(), String> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, h)| (*n, percentile_curve(h)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if curves.is_empty() {
        return Err("no successful operations to plot".to_string());
    }
    let x_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(1e-3, f64::max)
        * 1.2;
    let y_min = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        * 0.8;
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us, log scale)")
        .x_labels(x_max.ceil() as usize + 1)
        .x_label_formatter(&|x| x_label(*x))
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
