//! Line charts, as SVG or PNG depending on the file extension.
//!
//! Laying out labels needs a font (for PNG and SVG alike); DejaVu Sans is
//! embedded (crate `dejavu`) so that plots render the same on any machine,
//! with no system fonts installed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Chart size in pixels.
const SIZE: (u32, u32) = (1100, 700);

/// Errors while drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The extension is neither `.svg` nor `.png`.
    #[error("{0}: unsupported plot format (use .svg or .png)")]
    Format(String),
    /// The drawing backend failed.
    #[error("{path}: {message}")]
    Draw {
        /// The output file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The finished chart could not be written.
    #[error(transparent)]
    Write(#[from] sq_io::Error),
}

/// The file formats a chart can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// A 1100 x 700 bitmap.
    Png,
}

impl Format {
    /// The format named by the extension of `path`, or [`PlotError::Format`].
    pub fn of(path: &Path) -> Result<Format, PlotError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::Format(path.display().to_string())),
        }
    }
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

/// Draws `series` as lines with a marker on every point and a legend, and writes the chart to `path`
/// (`.svg` or `.png`) atomically.
pub fn line_chart(axes: &Axes, series: &[Series], path: &Path) -> Result<(), PlotError> {
    let bytes = line_chart_bytes(axes, series, path)?;
    Ok(sq_io::write_atomic(path, &bytes)?)
}

/// The file [`line_chart`] would write to `path`, in memory, in the format
/// of its extension, for callers that write several outputs together.
pub fn line_chart_bytes(axes: &Axes, series: &[Series], path: &Path) -> Result<Vec<u8>, PlotError> {
    let format = Format::of(path)?;
    register_font();
    let err = |message: String| PlotError::Draw { path: path.display().to_string(), message };
    let bytes = match format {
        Format::Svg => {
            let mut svg = String::new();
            draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), axes, series).map_err(err)?;
            svg.into_bytes()
        }
        Format::Png => {
            let (w, h) = SIZE;
            let mut rgb = vec![0u8; (w * h * 3) as usize];
            draw(BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(), axes, series).map_err(err)?;
            let mut png = Vec::new();
            image::ImageEncoder::write_image(
                image::codecs::png::PngEncoder::new(&mut png),
                &rgb,
                w,
                h,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| err(e.to_string()))?;
            png
        }
    };
    Ok(bytes)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid, so registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, axes: &Axes, series: &[Series]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
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
        // A marker on every point, so that single points (and the measured
        // points of a line) stand out.
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
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
