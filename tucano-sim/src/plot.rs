//! Line charts as PNG files (plotters' bitmap backend), several panels stacked in one image.
//!
//! Text needs a TrueType font: the one `TUCANO_PLOT_FONT` names, else DejaVu Sans or
//! Liberation Sans where Debian and other distributions install them (Debian:
//! `fonts-dejavu-core`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where a font is looked for when `TUCANO_PLOT_FONT` is not set.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
/// The family name charts use for the registered font.
const FAMILY: &str = "sans-serif";

/// Why a chart could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plot {path}: {reason}")]
pub struct PlotError {
    /// The file being drawn.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series called `name` through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// One chart of an image: axes, their labels and its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Shown above the chart.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// A logarithmic y axis (for latencies spanning orders of magnitude).
    pub log_y: bool,
}

impl Panel {
    /// A linear chart.
    pub fn new(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Self {
        Self {
            title: title.to_owned(),
            x_label: x_label.to_owned(),
            y_label: y_label.to_owned(),
            series,
            log_y: false,
        }
    }

    /// This chart with a logarithmic y axis.
    pub fn log_y(self) -> Self {
        Self {
            log_y: true,
            ..self
        }
    }
}

/// Draws `panels` stacked top to bottom into the PNG file `path`, `width` pixels wide and
/// 320 pixels per panel.
pub fn render(path: &Path, width: u32, panels: &[Panel]) -> Result<(), PlotError> {
    let fail = |reason: String| PlotError {
        path: path.display().to_string(),
        reason,
    };
    register_font().map_err(|reason| fail(reason.clone()))?;
    let height = 320 * u32::try_from(panels.len().max(1)).unwrap_or(1);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(panel, area).map_err(fail)?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

fn draw_panel(
    panel: &Panel,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    let points = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        (x_min, x_max, y_min, y_max) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let mut chart = ChartBuilder::on(area);
    chart
        .caption(&panel.title, (FAMILY, 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let style = |i: usize| colors[i % colors.len()].stroke_width(2);
    let error = |e: DrawingAreaErrorKind<_>| e.to_string();
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .label_style((FAMILY, 13))
                .draw()
                .map_err(error)?;
            for (i, series) in panel.series.iter().enumerate() {
                let points =
                    series.points.iter().copied().filter(|(x, y)| {
                        x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0)
                    });
                chart
                    .draw_series(LineSeries::new(points, style(i)))
                    .map_err(error)?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style(i)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 13))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(error)?;
        }};
    }
    if panel.log_y {
        let low = (y_min / 1.5).max(1e-3);
        let high = (y_max * 1.5).max(low * 2.0);
        draw!(
            chart
                .build_cartesian_2d(x_min..x_max, (low..high).log_scale())
                .map_err(error)?
        );
    } else {
        let low = y_min.min(0.0);
        let high = if y_max > low { y_max * 1.1 } else { low + 1.0 };
        draw!(
            chart
                .build_cartesian_2d(x_min..x_max, low..high)
                .map_err(error)?
        );
    }
    Ok(())
}

/// Registers the plotting font once per process.
fn register_font() -> Result<(), &'static String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let configured = std::env::var("TUCANO_PLOT_FONT").ok();
            let candidates = configured.iter().map(String::as_str).chain(FONT_CANDIDATES);
            let mut tried = Vec::new();
            for path in candidates {
                match std::fs::read(path) {
                    Ok(bytes) => {
                        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                        return plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                            .map_err(|_| format!("{path} is not a TrueType font"));
                    }
                    Err(e) => tried.push(format!("{path}: {e}")),
                }
            }
            Err(format!(
                "no TrueType font for the plots' text (install Debian's fonts-dejavu-core or set TUCANO_PLOT_FONT); tried {}",
                tried.join("; ")
            ))
        })
        .as_ref()
        .map(|_| ())
}
