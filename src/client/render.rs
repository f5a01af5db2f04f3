//! What the shell shows of a background job's events: its steps as notes tagged
//! with its number, its end as a note naming its command followed by the command's
//! message, printed together above the prompt.
//!
//! Owns: the words of job events. Does not own: the events (`jobs`) or where the
//! text goes (`output`).

use super::jobs::{JobEvent, What};
use super::messages::End;
use super::outcome::Outcome;
use super::output::Output;
use super::units::human;

/// Shows one event of a background job.
pub(crate) fn job(out: &Output, event: &JobEvent) {
    let n = event.job;
    let (finished, how) = match &event.what {
        What::Started | What::Progress { .. } => return,
        What::Resumed { from, size } => {
            return out.note(format!(
                "[{n}] resuming at {} of {}",
                human(*from),
                human(*size)
            ));
        }
        What::Note(text) => return out.note(format!("[{n}] {text}")),
        What::Done(f) => (f, f.summary.clone().unwrap_or_else(|| "done".into())),
        What::Failed(f) => {
            let how = match f.end {
                End::Cancelled => "cancelled",
                End::NotFound => "not found",
                End::Done | End::Failed => "failed",
            };
            (f, how.to_owned())
        }
    };
    let outcome = Outcome::Transfer {
        kind: finished.kind,
        end: finished.end,
    };
    out.together(&format!("[{n}] {}: {how}", finished.command), &outcome);
}
