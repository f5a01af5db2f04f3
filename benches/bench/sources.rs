//! Sources section of `peerdex bench`: FETCH of one file from 1, 2 and 4 owners at
//! once (issue 28 item 3), each owner a real `peerdex client` rate-limited with
//! `--max-upload-rate`, against FETCH from one owner in the same run.
//!
//! Four owners share the file from one folder (one content, one root); three
//! downloading shells run with `--max-sources 1, 2, 4` (1: one owner at a time,
//! GET_FILE_RANGE; 2 and 4: blocks from that many owners, every block verified). One
//! warm-up FETCH each (the owners' hash trees are ready after it), then rounds of the
//! three, alternated. Every copy's length is checked (its content too in smoke mode).
//!
//! Owns: the owners and the timing. Does not own: the shells (`downloads::Shell`).

use std::time::Instant;

use super::downloads::{Shell, check_and_remove, write_random};
use super::report::{Table, mb_per_s, verdict};
use super::{BenchError, Plan, arg, median, spawn_server};

const MIB: u64 = 1024 * 1024;
/// The file: 32 MiB takes 4 s from one owner at the rate below.
const FULL_SIZE: u64 = 32 * MIB;
/// Smoke mode: four blocks, half a second from one owner.
const SMOKE_SIZE: u64 = 4 * MIB;
/// Each owner's upload limit, bytes per second.
const RATE: u64 = 8 * MIB;
/// Sources compared.
const SOURCES: [usize; 3] = [1, 2, 4];
/// The target: three owners or more take at most this of one owner's time.
const TARGET_RATIO: f64 = 0.6;

/// Runs the sources section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let size = if plan.smoke { SMOKE_SIZE } else { FULL_SIZE };
    let dir = tempfile::tempdir()?;
    let (share, down) = (dir.path().join("share"), dir.path().join("down"));
    std::fs::create_dir_all(&share)?;
    std::fs::create_dir_all(&down)?;
    let src = share.join("big.bin");
    write_random(&src, size)?;
    let server = spawn_server("peerdex server", &["--ephemeral", "--no-logger", "--quiet"])?;
    let state = |name: &str| arg(&dir.path().join(format!("state-{name}")));
    let rate = RATE.to_string();
    let mut owners = Vec::new();
    for i in 0..4 {
        let st = state(&format!("owner{i}"));
        let extra = ["--max-upload-rate", &rate, "--state-dir", &st];
        let mut o = Shell::start_with(server.addr, &share, &extra)?;
        o.register_connect(&format!("owner{i}"))?;
        o.cmd("PUBLISH big.bin benchmark file", "c> PUBLISH OK")?;
        owners.push(o);
    }
    let mut bobs = Vec::new();
    for n in SOURCES {
        let (st, max) = (state(&format!("bob{n}")), n.to_string());
        let extra = ["--max-sources", &max, "--state-dir", &st];
        let mut b = Shell::start_with(server.addr, &down, &extra)?;
        b.register_connect(&format!("bob{n}"))?;
        bobs.push(b);
    }
    let fetch = |bob: &mut Shell, n: usize| -> Result<f64, BenchError> {
        let dst = down.join(format!("copy{n}.bin"));
        let t0 = Instant::now();
        bob.cmd(&format!("FETCH big.bin {}", arg(&dst)), "c> FETCH OK")?;
        let t = t0.elapsed().as_secs_f64();
        check_and_remove(&src, &dst, size, plan.smoke)?;
        Ok(t)
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); SOURCES.len()];
    for round in 0..=plan.rounds {
        for (i, (bob, n)) in bobs.iter_mut().zip(SOURCES).enumerate() {
            let t = fetch(bob, n)?;
            if round > 0 {
                times[i].push(t);
            }
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    print_table(size, plan.rounds, &medians);
    Ok(())
}

fn print_table(size: u64, rounds: usize, medians: &[f64]) {
    println!("## Sources\n");
    println!(
        "{} MiB file, 4 owners each limited to {} MiB/s (`--max-upload-rate`), one content; FETCH with `--max-sources` 1, 2 and 4 ({rounds} round(s) after a warm-up, alternated; medians), timed from the command to `c> FETCH OK` in real client processes (includes SEARCH and the owners' trees).\n",
        size / MIB,
        RATE / MIB
    );
    let one = medians[0].max(1e-9);
    let mut t = Table::new(&["sources", "seconds", "MB/s", "ratio to 1 owner", "target"]);
    for (&n, &secs) in SOURCES.iter().zip(medians) {
        let ratio = secs / one;
        let target = if n >= 3 {
            format!("<= {TARGET_RATIO} {}", verdict(ratio <= TARGET_RATIO))
        } else {
            "-".into()
        };
        t.row(vec![
            n.to_string(),
            format!("{secs:.3}"),
            mb_per_s(size, secs),
            format!("{ratio:.2}"),
            target,
        ]);
    }
    t.print();
}
