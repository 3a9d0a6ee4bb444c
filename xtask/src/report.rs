//! What `reproduce` writes: `results.json`, `table.md`, and the plots.

use std::fmt::Write as _;
use std::path::Path;

use crate::stopwatch::Timing;
use anyhow::Result;
use serde::Serialize;
use sq_report::plot::{line_chart, Axes, Series};

/// The paper's VGG-16 figures, quoted for comparison (Ozen & Orailoglu 2020).
pub const PAPER_PARAMS_RATIO: f64 = 4.9;
/// See [`PAPER_PARAMS_RATIO`].
pub const PAPER_SPEEDUP: f64 = 3.4;
/// The largest top-1 drop, in percentage points, that counts as negligible for the headline.
pub const NEGLIGIBLE_DROP_PP: f64 = 0.5;
/// The `allocator` of rows that follow the paper's rule: every producer
/// keeps `k(tau)` units of the statistics of the already-squeezed prefix.
pub const PAPER_RULE: &str = "k(tau)";

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
    /// Median over all interleaved pairs of its latency at batch 1.
    pub latency_b1_ms: f64,
    /// The same at batch 64.
    pub latency_b64_ms: f64,
    /// Median latency in tract at batch 1, over the pairs of the deployment check.
    pub tract_latency_b1_ms: Option<f64>,
    /// The same at batch 64.
    pub tract_latency_b64_ms: Option<f64>,
}

/// A squeezed model in tract, the second engine (its ONNX export, optimised
/// by tract for the batch size, one thread), timed interleaved with the
/// original's export.
#[derive(Clone, Copy, Serialize)]
pub struct Tract {
    /// Median latency at batch 1.
    pub latency_b1_ms: f64,
    /// Median latency at batch 64.
    pub latency_b64_ms: f64,
    /// Original / squeezed latency at batch 1.
    pub speedup_b1: f64,
    /// Original / squeezed latency at batch 64.
    pub speedup_b64: f64,
}

/// One squeezed model.
#[derive(Clone, Serialize)]
pub struct Row {
    /// The budget: `tau:T` (the paper's rule) or `params:Rx` / `flops:Rx`.
    pub budget: String,
    /// How the widths were chosen: [`PAPER_RULE`], or a global allocator
    /// (`uniform`, `variance`, `measured`).
    pub allocator: String,
    /// The retained-variance target, for the paper's rule and the uniform allocator.
    pub tau: Option<f64>,
    /// Selection strategy.
    pub select: String,
    /// Compensation.
    pub compensate: String,
    /// The residual streams' budget (a ResNet's rows that squeeze them too).
    pub stream: Option<String>,
    /// Kept units per producer, first to last.
    pub widths: Vec<usize>,
    /// Kept channels per residual stream, first to last (empty: streams whole).
    pub stream_widths: Vec<usize>,
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
    /// Every width is a multiple of this or its producer's full width (1: not rounded).
    pub round: usize,
    /// Its speed in tract, for the rows of the deployment check.
    pub tract: Option<Tract>,
}

impl Row {
    /// Whether the units were chosen from the statistics with compensation
    /// (the method and `qr`), as opposed to a magnitude or random baseline.
    pub fn is_information_based(&self) -> bool {
        matches!(self.select.as_str(), "eliminate" | "qr") && self.compensate == "lstsq"
    }

    fn strategy(&self) -> String {
        format!("{}+{}", self.select, self.compensate)
    }

    /// How the widths were chosen, for tables: the rule or allocator, its
    /// tau, and the rounding.
    fn widths_label(&self) -> String {
        let mut label = match (self.allocator.as_str(), self.tau) {
            (PAPER_RULE, _) => PAPER_RULE.to_string(),
            (allocator, Some(tau)) => format!("{allocator} (tau {tau:.4})"),
            (allocator, None) => allocator.to_string(),
        };
        if let Some(stream) = &self.stream {
            let _ = write!(label, ", streams {stream}");
        }
        if self.round > 1 {
            let _ = write!(label, ", round {}", self.round);
        }
        label
    }

    /// The line of the Pareto plots this row belongs to.
    fn series(&self) -> String {
        let mut series = match self.allocator.as_str() {
            PAPER_RULE => format!("{PAPER_RULE} {}", self.strategy()),
            allocator => format!("{allocator} allocation, {}", self.strategy()),
        };
        match (&self.stream, self.allocator.as_str()) {
            (Some(_), PAPER_RULE) => series.push_str(", streams k(tau)"),
            (Some(stream), _) => series.push_str(&format!(", streams {stream}")),
            (None, _) => {}
        }
        match self.round {
            1 => series,
            round => format!("{series}, round {round}"),
        }
    }
}

/// The whole run.
#[derive(Serialize)]
pub struct Results {
    /// The network, for titles (`VGG-16`).
    pub title: String,
    /// Whether the paper's VGG-16 figures are quoted for comparison.
    pub paper: bool,
    /// The machine.
    pub machine: Machine,
    /// UTC date and time of the run.
    pub date: String,
    /// Git commit of the code.
    pub commit: String,
    /// The settings of the run (weights, dataset, calibration, validation, test images, taus, budgets).
    pub settings: serde_json::Value,
    /// Names of the producers, in the order of every row's `widths`.
    pub producers: Vec<String>,
    /// Original widths of the producers.
    pub original_widths: Vec<usize>,
    /// Names of the residual streams, in the order of every row's `stream_widths` (empty for a VGG).
    pub streams: Vec<String>,
    /// Original widths of the residual streams.
    pub original_stream_widths: Vec<usize>,
    /// The original model.
    pub original: Original,
    /// One row per squeezed model.
    pub rows: Vec<Row>,
    /// The information-based row with the largest params ratio whose drop is at most 0.5 pp.
    pub smallest: Option<Row>,
    /// The information-based row with the largest batch-64 speedup whose drop is at most 0.5 pp.
    pub fastest: Option<Row>,
    /// The run's wall time and where it went.
    pub timing: Timing,
}

impl Results {
    /// Among the information-based rows whose top-1 drop is at most 0.5 pp,
    /// the one with the largest `key`.
    pub fn pick(rows: &[Row], key: impl Fn(&Row) -> f64) -> Option<Row> {
        Self::pick_index(rows, key).map(|i| rows[i].clone())
    }

    /// The index of the row [`Results::pick`] picks.
    pub fn pick_index(rows: &[Row], key: impl Fn(&Row) -> f64) -> Option<usize> {
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.is_information_based() && r.drop_pp <= NEGLIGIBLE_DROP_PP)
            .max_by(|a, b| key(a.1).total_cmp(&key(b.1)))
            .map(|(i, _)| i)
    }

    /// The headline sentences printed at the end of the run.
    pub fn headline_text(&self) -> String {
        let describe = |what: &str, h: &Option<Row>| {
            match h {
            Some(h) => format!(
                "headline ({what} within {NEGLIGIBLE_DROP_PP} pp): {} {:.2}x smaller, {:.2}x fewer FLOPs, {:.2}x faster at batch 64 ({:.2}x at batch 1), top-1 {:.2}% -> {:.2}% ({:+.2} pp), {} {}, {}",
                self.title,
                h.params_ratio,
                h.flops_ratio,
                h.speedup_b64,
                h.speedup_b1,
                100.0 * self.original.top1,
                100.0 * h.top1,
                -h.drop_pp,
                h.budget,
                h.widths_label(),
                h.strategy()
            ),
            None => format!("headline ({what}): no information-based model kept the top-1 drop within {NEGLIGIBLE_DROP_PP} pp"),
        }
        };
        let mut text = format!("{}\n{}", describe("smallest", &self.smallest), describe("fastest", &self.fastest));
        if self.paper {
            text.push_str(&format!(
                "\npaper (Ozen & Orailoglu 2020, VGG-16 on CIFAR-10): {PAPER_PARAMS_RATIO}x smaller, {PAPER_SPEEDUP}x faster, negligible loss"
            ));
        }
        text
    }

    /// The results table, as Markdown.
    pub fn table_markdown(&self) -> String {
        let mut s = String::new();
        let o = &self.original;
        let _ = writeln!(s, "# {} squeezed in one shot\n", self.title);
        let _ = writeln!(
            s,
            "{} on {} ({} cores), commit {}, {}\n",
            self.date, self.machine.cpu, self.machine.cores, self.commit, self.settings
        );
        let _ = writeln!(s, "| budget | widths | select + compensate | params | params ratio | FLOPs (MAC) | FLOP ratio | MB | top-1 | drop (pp) | b1 ms | b1 speedup | b64 ms | b64 speedup |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| - | original | - | {} | 1.00x | {:.1}M | 1.00x | {:.1} | {:.2}% | - | {:.2} | 1.00x | {:.1} | 1.00x |",
            o.params,
            o.flops as f64 / 1e6,
            o.bytes as f64 / 1e6,
            100.0 * o.top1,
            o.latency_b1_ms,
            o.latency_b64_ms
        );
        for r in &self.rows {
            let widths = r.widths_label();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2}x | {:.1}M | {:.2}x | {:.1} | {:.2}% | {:.2} | {:.2} | {:.2}x | {:.1} | {:.2}x |",
                r.budget,
                widths,
                r.strategy(),
                r.params,
                r.params_ratio,
                r.flops as f64 / 1e6,
                r.flops_ratio,
                r.bytes as f64 / 1e6,
                100.0 * r.top1,
                r.drop_pp,
                r.latency_b1_ms,
                r.speedup_b1,
                r.latency_b64_ms,
                r.speedup_b64
            );
        }
        if self.paper {
            let _ = writeln!(
                s,
                "| - | paper (Ozen & Orailoglu 2020, VGG-16, CIFAR-10) | - | - | {PAPER_PARAMS_RATIO}x | - | - | - | - | negligible | - | - | - | {PAPER_SPEEDUP}x |"
            );
        }
        let _ = writeln!(s, "\n{}", self.headline_text());
        self.deployment_markdown(&mut s);
        s
    }

    /// The deployment table: the rows also timed in tract, beside their
    /// speedups in squeeze's own runner.
    fn deployment_markdown(&self, s: &mut String) {
        let (Some(b1), Some(b64)) = (self.original.tract_latency_b1_ms, self.original.tract_latency_b64_ms) else {
            return;
        };
        let _ = writeln!(s, "\n## The headline models in a second engine\n");
        let _ = writeln!(
            s,
            "Speedup over the original in squeeze's runner (both cores) and in tract (the ONNX export, one thread), \
             each measured interleaved with the original in the same engine. Original in tract: {b1:.2} ms at batch 1, \
             {b64:.1} ms at batch 64.\n"
        );
        let _ = writeln!(s, "| budget | widths | select + compensate | params ratio | FLOP ratio | top-1 | drop (pp) | runner b1 | runner b64 | tract b1 | tract b64 |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let Some(t) = r.tract else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2}x | {:.2}x | {:.2}% | {:.2} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
                r.budget,
                r.widths_label(),
                r.strategy(),
                r.params_ratio,
                r.flops_ratio,
                100.0 * r.top1,
                r.drop_pp,
                r.speedup_b1,
                r.speedup_b64,
                t.speedup_b1,
                t.speedup_b64
            );
        }
    }

    /// `pareto.svg`: top-1 against params ratio, one line per allocation
    /// and strategy, with the paper's point marked.
    pub fn plot_pareto(&self, path: &Path) -> Result<()> {
        let mut names: Vec<String> = self.rows.iter().map(Row::series).collect();
        names.sort();
        names.dedup();
        let original = 100.0 * self.original.top1;
        let mut series: Vec<Series> = names
            .iter()
            .map(|name| {
                let mut points: Vec<(f64, f64)> = vec![(1.0, original)];
                points
                    .extend(self.rows.iter().filter(|r| &r.series() == name).map(|r| (r.params_ratio, 100.0 * r.top1)));
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { label: name.clone(), points }
            })
            .collect();
        if self.paper {
            series.push(Series {
                label: format!("paper: {PAPER_PARAMS_RATIO}x smaller, negligible loss (CIFAR-10)"),
                points: vec![(PAPER_PARAMS_RATIO, original)],
            });
        }
        let max_ratio =
            self.rows.iter().map(|r| r.params_ratio).fold(if self.paper { PAPER_PARAMS_RATIO } else { 1.0 }, f64::max);
        let min_top1 = self.rows.iter().map(|r| 100.0 * r.top1).fold(original, f64::min);
        let axes = Axes {
            title: "Top-1 vs compression (no fine-tuning)".into(),
            x_label: "params ratio (original / squeezed)".into(),
            y_label: "top-1 on the test split (%)".into(),
            x_range: (1.0, max_ratio * 1.05),
            y_range: ((min_top1 - 1.0).floor().max(0.0), (original + 0.5).ceil()),
        };
        Ok(line_chart(&axes, &series, path)?)
    }

    /// `widths.svg`: per-producer widths of the original, of the paper's
    /// rule and of every measured allocation.
    pub fn plot_widths(&self, path: &Path) -> Result<()> {
        let line = |label: String, widths: &[usize]| Series {
            label,
            points: widths.iter().enumerate().map(|(i, &w)| (i as f64, w as f64)).collect(),
        };
        let mut series = vec![line("original".into(), &self.original_widths)];
        series.extend(
            self.rows
                .iter()
                .filter(|r| r.is_information_based() && r.round == 1)
                .filter(|r| r.allocator == PAPER_RULE || r.allocator == "measured")
                .filter(|r| r.select == self.rows[0].select)
                .map(|r| {
                    line(
                        format!(
                            "{} {}{}",
                            r.budget,
                            r.allocator,
                            r.stream.as_ref().map_or(String::new(), |s| format!(", streams {s}"))
                        ),
                        &r.widths,
                    )
                }),
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
