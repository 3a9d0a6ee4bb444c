//! What `reproduce` writes: `results.json`, `table.md`, and the plots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sq_report::plot::{line_chart, Axes, Series};
use sq_select::Tau;

/// The paper's VGG-16 figures, quoted for comparison (Ozen & Orailoglu 2020).
pub const PAPER_PARAMS_RATIO: f64 = 4.9;
/// See [`PAPER_PARAMS_RATIO`].
pub const PAPER_SPEEDUP: f64 = 3.4;
/// The largest top-1 drop, in percentage points, that counts as negligible for the headline.
pub const NEGLIGIBLE_DROP_PP: f64 = 0.5;

/// Where and when the run happened.
#[derive(Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Operating system and architecture.
    pub os: String,
}

/// The original model's measurements.
#[derive(Serialize)]
pub struct Original {
    /// Stored parameters.
    pub params: usize,
    /// Multiply-accumulates per image.
    pub flops: usize,
    /// Checkpoint size in bytes.
    pub bytes: u64,
    /// Top-1 on the test images.
    pub top1: f64,
    /// Median latency at batch 1 (interleaved with the method at the first tau).
    pub latency_b1_ms: f64,
    /// Median latency at batch 64.
    pub latency_b64_ms: f64,
}

/// One squeezed model.
#[derive(Clone, Serialize)]
pub struct Row {
    /// Retained-variance target that set the widths.
    pub tau: Tau,
    /// Selection strategy.
    pub select: String,
    /// Compensation.
    pub compensate: String,
    /// Kept units per producer, first to last.
    pub widths: Vec<usize>,
    /// Stored parameters.
    pub params: usize,
    /// Original / squeezed parameters.
    pub params_ratio: f64,
    /// Multiply-accumulates per image.
    pub flops: usize,
    /// Original / squeezed FLOPs.
    pub flops_ratio: f64,
    /// Checkpoint size in bytes.
    pub bytes: u64,
    /// Top-1 on the test images.
    pub top1: f64,
    /// Original top-1 minus this top-1, in percentage points.
    pub drop_pp: f64,
    /// Median latency at batch 1.
    pub latency_b1_ms: f64,
    /// Median latency at batch 64.
    pub latency_b64_ms: f64,
    /// Original / squeezed latency at batch 1, measured interleaved.
    pub speedup_b1: f64,
    /// Original / squeezed latency at batch 64, measured interleaved.
    pub speedup_b64: f64,
    /// Checkpoint file written for this row.
    pub checkpoint: String,
}

impl Row {
    /// The method of the paper (and the default of `squeeze compress`).
    pub fn is_method(&self) -> bool {
        self.select == "eliminate" && self.compensate == "lstsq"
    }
    fn strategy(&self) -> String {
        format!("{}+{}", self.select, self.compensate)
    }
}

/// The whole run.
#[derive(Serialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// UTC date and time of the run.
    pub date: String,
    /// Git commit of the code.
    pub commit: String,
    /// The settings of the run (weights, dataset, calibration, test images, taus).
    pub settings: serde_json::Value,
    /// Names of the producers, in the order of every row's `widths`.
    pub producers: Vec<String>,
    /// Original widths of the producers.
    pub original_widths: Vec<usize>,
    /// The original model.
    pub original: Original,
    /// One row per (tau, strategy).
    pub rows: Vec<Row>,
    /// The row with the largest params ratio whose drop is at most 0.5 pp.
    pub headline: Option<Row>,
}

impl Results {
    /// The headline: among all rows with a drop of at most 0.5 pp, the
    /// smallest model (the method's row first when several tie).
    pub fn pick_headline(rows: &[Row]) -> Option<Row> {
        rows.iter()
            .filter(|r| r.drop_pp <= NEGLIGIBLE_DROP_PP)
            .max_by(|a, b| a.params_ratio.total_cmp(&b.params_ratio).then(a.is_method().cmp(&b.is_method())))
            .cloned()
    }

    /// The headline sentence printed at the end of the run.
    pub fn headline_text(&self) -> String {
        match &self.headline {
            Some(h) => format!(
                "headline: VGG-16 {:.2}x smaller ({:.2}x fewer FLOPs), {:.2}x faster at batch 64 ({:.2}x at batch 1), top-1 {:.2}% -> {:.2}% ({:+.2} pp) with {} at tau {} — paper: {PAPER_PARAMS_RATIO}x smaller, {PAPER_SPEEDUP}x faster",
                h.params_ratio, h.flops_ratio, h.speedup_b64, h.speedup_b1, 100.0 * self.original.top1, 100.0 * h.top1, -h.drop_pp, h.strategy(), h.tau
            ),
            None => format!("headline: no setting of the method kept the top-1 drop within {NEGLIGIBLE_DROP_PP} pp; see table.md"),
        }
    }

    /// The paper-style table, as Markdown.
    pub fn table_markdown(&self) -> String {
        let mut s = String::new();
        let o = &self.original;
        let _ = writeln!(s, "# VGG-16 squeezed in one shot\n");
        let _ = writeln!(
            s,
            "{} on {} ({} cores), commit {}, {}\n",
            self.date, self.machine.cpu, self.machine.cores, self.commit, self.settings
        );
        let _ = writeln!(s, "| tau | select + compensate | params | params ratio | FLOPs (MAC) | FLOP ratio | MB | top-1 | drop (pp) | b1 ms | b1 speedup | b64 ms | b64 speedup |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| - | original | {} | 1.00x | {:.1}M | 1.00x | {:.1} | {:.2}% | - | {:.2} | 1.00x | {:.1} | 1.00x |",
            o.params,
            o.flops as f64 / 1e6,
            o.bytes as f64 / 1e6,
            100.0 * o.top1,
            o.latency_b1_ms,
            o.latency_b64_ms
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2}x | {:.1}M | {:.2}x | {:.1} | {:.2}% | {:.2} | {:.2} | {:.2}x | {:.1} | {:.2}x |",
                r.tau, r.strategy(), r.params, r.params_ratio, r.flops as f64 / 1e6, r.flops_ratio, r.bytes as f64 / 1e6,
                100.0 * r.top1, r.drop_pp, r.latency_b1_ms, r.speedup_b1, r.latency_b64_ms, r.speedup_b64
            );
        }
        let _ = writeln!(s, "| - | paper (Ozen & Orailoglu 2020, VGG-16) | - | {PAPER_PARAMS_RATIO}x | - | - | - | - | negligible | - | - | - | {PAPER_SPEEDUP}x |");
        let _ = writeln!(s, "\n{}", self.headline_text());
        s
    }

    /// `pareto.svg`: top-1 against params ratio, one line per strategy.
    pub fn plot_pareto(&self, path: &Path) -> Result<()> {
        let mut strategies: Vec<String> = self.rows.iter().map(Row::strategy).collect();
        strategies.sort();
        strategies.dedup();
        let series: Vec<Series> = strategies
            .iter()
            .map(|name| {
                let mut points: Vec<(f64, f64)> = vec![(1.0, 100.0 * self.original.top1)];
                points.extend(
                    self.rows.iter().filter(|r| &r.strategy() == name).map(|r| (r.params_ratio, 100.0 * r.top1)),
                );
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { label: name.clone(), points }
            })
            .collect();
        let max_ratio = self.rows.iter().map(|r| r.params_ratio).fold(1.0, f64::max);
        let min_top1 = self.rows.iter().map(|r| 100.0 * r.top1).fold(100.0 * self.original.top1, f64::min);
        let axes = Axes {
            title: "Top-1 vs compression (no fine-tuning)".into(),
            x_label: "params ratio (original / squeezed)".into(),
            y_label: "top-1 on the test split (%)".into(),
            x_range: (1.0, max_ratio * 1.05),
            y_range: ((min_top1 - 1.0).floor(), (100.0 * self.original.top1 + 0.5).ceil()),
        };
        Ok(line_chart(&axes, &series, path)?)
    }

    /// `widths.svg`: per-producer widths of the original and of the method at every tau.
    pub fn plot_widths(&self, path: &Path) -> Result<()> {
        let line = |label: String, widths: &[usize]| Series {
            label,
            points: widths.iter().enumerate().map(|(i, &w)| (i as f64, w as f64)).collect(),
        };
        let mut series = vec![line("original".into(), &self.original_widths)];
        series.extend(
            self.rows
                .iter()
                .filter(|r| r.is_method())
                .map(|r| line(format!("eliminate+lstsq, tau {}", r.tau), &r.widths)),
        );
        let axes = Axes {
            title: format!(
                "Units kept per producer ({} = first .. {} = last)",
                self.producers.first().map_or("", String::as_str),
                self.producers.last().map_or("", String::as_str)
            ),
            x_label: "producer index".into(),
            y_label: "units (channels / neurons)".into(),
            x_range: (0.0, (self.producers.len().max(2) - 1) as f64),
            y_range: (0.0, *self.original_widths.iter().max().unwrap_or(&1) as f64 * 1.05),
        };
        Ok(line_chart(&axes, &series, path)?)
    }
}
