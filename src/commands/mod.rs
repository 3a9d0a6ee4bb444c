//! One module per subcommand; each parses its flags and calls the libraries.

pub mod analyze;
pub mod compress;
pub mod eval;
pub mod export;
pub mod model_args;
pub mod outputs;
