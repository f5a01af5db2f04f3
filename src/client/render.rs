//! What the shell shows of a background job's events: its steps as notes tagged
//! with its number, its end as a note naming its command followed by the command's
//! message, printed together above the prompt.
//!
//! Owns: the words of job events and the shell's observer of them. Does not own: the
//! events (`jobs`) or where the text goes (`output`).

use std::sync::Arc;

use crossbeam_channel::Sender;

use super::jobs::{Finished, JobEvent, Observer, What};
use super::messages::End;
use super::outcome::Outcome;
use super::output::Output;
use super::units::human;

/// What a shell does with its jobs' events: shows them at once (above the prompt)
/// and hands each job's end to `ended`, for the shell to react to (re-share) between
/// commands.
pub(crate) fn observer(out: Arc<Output>, ended: Sender<Finished>) -> Observer {
    Arc::new(move |event| {
        job(&out, &event);
        if let What::Done(f) | What::Failed(f) = event.what {
            // At most MAX_JOBS jobs exist; a full queue only drops a re-share.
            let _ = ended.try_send(f);
        }
    })
}

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
