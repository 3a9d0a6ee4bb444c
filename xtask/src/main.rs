//! Project automation, per the cargo-xtask convention: `cargo xtask reproduce vgg16|resnet18`,
//! `cargo xtask memory`.
//!
//! `reproduce` runs the paper's experiment end to end, offline by default,
//! and measures every figure it reports in the same run: accuracy on the
//! full test split, parameters, FLOPs, bytes on disk, and interleaved
//! wall-clock latency of the original and the squeezed models.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod hub;
mod latency;
mod memory;
mod report;
mod reproduce;
mod stopwatch;

#[derive(Parser)]
#[command(name = "xtask", about = "squeeze project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce a paper result and measure it against the original model.
    Reproduce {
        #[command(subcommand)]
        target: Box<Target>,
    },
    /// Peak resident memory of `squeeze compress` at several calibration sizes (one child process each).
    Memory(memory::Args),
}

#[derive(Subcommand)]
enum Target {
    /// VGG-16 (Ozen & Orailoglu 2020: 4.9x smaller, 3.4x faster): method vs baselines per tau.
    Vgg16(reproduce::Args),
    /// ResNet-18: the same table, inside the residual blocks only and with the residual streams too.
    Resnet18(reproduce::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sq_io::end_quietly_on_closed_stdout();
    // A Ctrl-C removes the temporary files of outputs being written (exit 130).
    if let Err(err) = sq_io::remove_outputs_on_interrupt() {
        eprintln!("warning: {err}");
    }
    let result = match cli.command {
        Command::Reproduce { target } => match *target {
            Target::Vgg16(args) => reproduce::run(args, &reproduce::VGG16),
            Target::Resnet18(args) => reproduce::run(args, &reproduce::RESNET18),
        },
        Command::Memory(args) => memory::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
