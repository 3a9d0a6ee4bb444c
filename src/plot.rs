//! Charts, as SVG or PNG depending on the file extension.
//!
//! Laying out labels needs a font (for PNG and SVG alike); DejaVu Sans is
//! embedded (crate `dejavu`) so that plots render the same on any machine,
//! with no system fonts installed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::LayerReport;

/// Errors while drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The extension is neither `.svg` nor `.png`.
    #[error("{0}: unsupported plot format (use .svg or .png)")]
    Format(String),
    /// The drawing backend failed (for example, the file cannot be written).
    #[error("{path}: {message}")]
    Draw {
        /// The output file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// One line of a chart: a label and its points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// Axis titles and ranges of a line chart.
pub struct Axes {
    /// Chart title.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// Horizontal range.
    pub x_range: (f64, f64),
    /// Vertical range.
    pub y_range: (f64, f64),
}

/// The cumulative explained-variance curves of all producers on one chart:
/// x = fraction of the layer's units (principal components kept), y = share
/// of the variance retained.
pub fn explained_variance(reports: &[LayerReport], path: &Path) -> Result<(), PlotError> {
    let series = reports
        .iter()
        .map(|r| {
            let n = r.explained.len().max(1) as f64;
            let mut points = vec![(0.0, 0.0)];
            points.extend(r.explained.iter().enumerate().map(|(i, &y)| ((i + 1) as f64 / n, y)));
            Series { label: format!("{} (n={})", r.name, r.width), points }
        })
        .collect::<Vec<_>>();
    let y_min = reports.iter().filter_map(|r| r.explained.first().copied()).fold(1.0f64, f64::min).clamp(0.0, 0.9);
    let axes = Axes {
        title: "Cumulative explained variance per layer".into(),
        x_label: "fraction of principal components (k / n)".into(),
        y_label: "variance retained".into(),
        x_range: (0.0, 1.0),
        y_range: ((y_min * 10.0).floor() / 10.0, 1.0),
    };
    line_chart(&axes, &series, path)
}

/// Draws `series` as lines with a legend, to `.svg` or `.png`.
pub fn line_chart(axes: &Axes, series: &[Series], path: &Path) -> Result<(), PlotError> {
    let size = (1100, 700);
    register_font();
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw(SVGBackend::new(path, size).into_drawing_area(), axes, series, path),
        Some("png") => draw(BitMapBackend::new(path, size).into_drawing_area(), axes, series, path),
        _ => Err(PlotError::Format(path.display().to_string())),
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid, so registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    axes: &Axes,
    series: &[Series],
    path: &Path,
) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError::Draw { path: path.display().to_string(), message: e.to_string() };
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&axes.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(axes.x_range.0..axes.x_range.1, axes.y_range.0..axes.y_range.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(&axes.x_label)
        .y_desc(&axes.y_label)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
