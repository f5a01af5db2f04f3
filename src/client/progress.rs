//! A transfer in the foreground as a person at the shell sees it: a progress bar on
//! a terminal, its steps as notes; and how sizes and rates read.
//!
//! Owns: the bar's look and when it shows. Does not own: the download (`peer`), the
//! steps and their words (`fetch`).

use super::command::Kind;
use super::fetch::{Report, Step, sources};
use super::output::Output;
use super::peer::Done;

/// Downloads at least this large show a progress bar (in a terminal). Smaller ones
/// finish before a bar would be readable.
pub(crate) const PROGRESS_MIN_SIZE: u64 = 8 * 1024 * 1024;

/// What a foreground transfer shows: its steps as notes and, on a terminal, a
/// progress bar for large (or unknown-size) downloads that ends at 100%.
pub(crate) struct Foreground<'a> {
    kind: Kind,
    remote: &'a str,
    out: &'a Output,
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> Foreground<'a> {
    pub(crate) fn new(kind: Kind, remote: &'a str, out: &'a Output, terminal: bool) -> Self {
        Foreground {
            kind,
            remote,
            out,
            terminal,
            bar: None,
        }
    }

    /// Takes the bar away: cleared when the transfer failed, left at its final
    /// position (100% of a download that completed) otherwise.
    fn close(&mut self, done: Option<&Done>) {
        let Some(bar) = self.bar.take() else { return };
        match done {
            Some(done) => {
                bar.set_length(done.size);
                bar.set_position(done.size);
                bar.finish();
            }
            None => bar.finish_and_clear(),
        }
    }

    fn open(&mut self, size: Option<u64>, from: u64) {
        self.close(None);
        if !self.terminal || size.is_some_and(|s| s < PROGRESS_MIN_SIZE) {
            return;
        }
        let target = indicatif::ProgressDrawTarget::stdout();
        // With a size: a bar and a percentage; without (plain GET_FILE): bytes and
        // rate only.
        let template = match size {
            Some(_) => {
                "{bar:30} {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
            }
            None => "{spinner} {bytes} {binary_bytes_per_sec}",
        };
        let bar = indicatif::ProgressBar::with_draw_target(size, target);
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_position(from);
        bar.reset_eta();
        self.bar = Some(bar);
    }
}

impl Report for Foreground<'_> {
    fn step(&mut self, step: Step<'_>) {
        match &step {
            Step::Started { size, from, .. } => self.open(*size, *from),
            Step::Spread { size, from, .. } => self.open(Some(*size), *from),
            Step::Sources(n) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(sources(*n));
                }
            }
            Step::Dropped { .. } => {
                // A note above the bar, which goes on with the other sources.
                if let (Some(bar), Some(note)) = (&self.bar, step.describe(self.kind, self.remote))
                {
                    bar.suspend(|| self.out.note(note));
                    return;
                }
            }
            Step::ServedBySeveral { done, .. } => self.close(Some(done)),
            Step::Progress(position) => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*position);
                }
            }
            Step::Served { done, .. } => self.close(Some(done)),
            _ => self.close(None),
        }
        if let Some(note) = step.describe(self.kind, self.remote) {
            self.out.note(note);
        }
    }
}

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        self.close(None);
    }
}
