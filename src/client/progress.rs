//! Progress of a download on a terminal, and how sizes and rates read: the bar of a
//! foreground transfer, the summary line after a download.
//!
//! Owns: the bar's look and when it shows. Does not own: the download (`peer`).

use super::peer::{Done, Progress};

/// Downloads at least this large show a progress bar (in a terminal). Smaller ones
/// finish before a bar would be readable.
pub(crate) const PROGRESS_MIN_SIZE: u64 = 8 * 1024 * 1024;

/// Bytes as a person reads them: `512 B`, `1.2 GiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The one stderr line after a download: size, time, rate (of the bytes this
/// download received).
pub(crate) fn summary(done: &Done) -> String {
    let secs = done.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        human((done.received as f64 / secs) as u64)
    } else {
        human(done.received)
    };
    let mut line = format!("{} in {secs:.2} s, {rate}/s", human(done.size));
    if done.resumed_from > 0 {
        line.push_str(&format!(
            " (resumed at {}, {} received)",
            human(done.resumed_from),
            human(done.received)
        ));
    }
    line
}

/// A progress bar on a terminal for large (or unknown-size) downloads; nothing
/// otherwise. It also says on stderr where a resumed download starts.
pub(crate) struct Bar {
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Bar {
    pub(crate) fn new(terminal: bool) -> Bar {
        Bar {
            terminal,
            bar: None,
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, size: Option<u64>, from: u64) {
        if let (Some(size), true) = (size, from > 0) {
            eprintln!("peerdex: resuming at {} of {}", human(from), human(size));
        }
        self.finish();
        if !self.terminal || size.is_some_and(|s| s < PROGRESS_MIN_SIZE) {
            return;
        }
        let target = indicatif::ProgressDrawTarget::stdout();
        // With a size: a bar and a percentage; without (plain GET_FILE): bytes and
        // rate only.
        let (bar, template) = match size {
            Some(size) => (
                indicatif::ProgressBar::with_draw_target(Some(size), target),
                "{bar:30} {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                indicatif::ProgressBar::with_draw_target(None, target),
                "{spinner} {bytes} {binary_bytes_per_sec}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_position(from);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human((12 << 30) / 10), "1.2 GiB");
    }
}
