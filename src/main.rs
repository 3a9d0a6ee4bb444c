//! `squeeze`: one-shot compression of trained CNNs by squeezing correlated neurons.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

#[derive(Parser)]
#[command(name = "squeeze", version, about = "Make a trained CNN smaller and faster in one shot, without fine-tuning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Top-1 accuracy, size, FLOPs and throughput of a checkpoint on a dataset.
    Eval(commands::eval::Args),
    /// Per-layer information content: k(tau), explained-variance curves, dead units.
    Analyze(commands::analyze::Args),
    /// Squeeze a checkpoint in one shot and write the smaller one.
    Compress(commands::compress::Args),
    /// Write a checkpoint as an ONNX file for deployment (BatchNorm folded, preprocessing in its metadata).
    Export(commands::export::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sq_io::end_quietly_on_closed_stdout();
    // A Ctrl-C removes the temporary files of outputs being written (exit 130).
    if let Err(err) = sq_io::remove_outputs_on_interrupt() {
        eprintln!("warning: {err}");
    }
    let result = match cli.command {
        Command::Eval(args) => commands::eval::run(args),
        Command::Analyze(args) => commands::analyze::run(args),
        Command::Compress(args) => commands::compress::run(args),
        Command::Export(args) => commands::export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
