//! Progress bars on stderr (hidden automatically when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items of `unit` with a message in front.
pub fn bar(total: usize, message: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{msg:>12}} [{{bar:32}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("static template").progress_chars("=> "));
    bar.set_message(message.to_string());
    bar
}

/// Sets `bar` to `done` out of `total` counted in billions (of
/// multiply-accumulates, say), for work too large to count one by one.
pub fn set_giga(bar: &ProgressBar, done: usize, total: usize) {
    bar.set_length((total / 1_000_000_000) as u64);
    bar.set_position((done / 1_000_000_000) as u64);
}
