//! The SEARCH index alone over a million publications: build time, memory, search
//! time against a linear scan of the same names (every answer compared with it),
//! and the cost of churn (remove, insert into reused ids, a user's batch).
//!
//! Run: `cargo bench --bench search_index` (release; prints the figures quoted in
//! the module documentation of `src/server/search/trigram.rs`). The index is the
//! crate's own file, compiled into this benchmark, so nothing of it is made public
//! for the benchmark's sake.

#[allow(dead_code)]
#[path = "../src/server/search/trigram.rs"]
mod trigram;

use std::collections::HashSet;
use std::time::Instant;

use trigram::{PubId, SearchIndex};

const N: usize = 1_000_000;
const CAP: usize = 1000;
/// Publications removed, then published again, in the churn step.
const CHURN: usize = 100_000;

/// Owners: 20,000 users, 9 in 10 connected.
fn connected(id: PubId) -> bool {
    !(id % 20_000).is_multiple_of(10)
}

fn main() {
    let mut names = realistic_names(N);
    let mut index = build(&names);
    searches(&index, &names);
    churn(&mut index, &mut names);
    batch(&mut index, &mut names);
    let name_of = |id: PubId| connected(id).then(|| names[id as usize].as_str());
    for pattern in ["thunder_velvet", "mp3", "zq", "Q", ""] {
        assert_eq!(
            search(&index, pattern, name_of),
            linear(pattern, name_of),
            "after churn: {pattern}"
        );
    }
}

/// The index's answer to `pattern`.
fn search<'n>(
    index: &SearchIndex,
    pattern: &str,
    name_of: impl Fn(PubId) -> Option<&'n str>,
) -> Vec<PubId> {
    let mut hits = Vec::new();
    index.search(pattern, CAP, name_of, |id| hits.push(id));
    hits
}

/// The answer of a linear scan in id order.
fn linear<'n>(pattern: &str, name_of: impl Fn(PubId) -> Option<&'n str>) -> Vec<PubId> {
    (0..N as u32)
        .filter(|&id| name_of(id).is_some_and(|n| n.contains(pattern)))
        .take(CAP)
        .collect()
}

/// Inserts every name, one at a time.
fn build(names: &[String]) -> SearchIndex {
    let name_bytes: usize = names.iter().map(|n| n.len()).sum();
    let t = Instant::now();
    let mut index = SearchIndex::new();
    for name in names {
        index.insert(name);
    }
    let build = t.elapsed();
    let mem = index.memory_bytes();
    println!(
        "{N} publications, names {:.1} bytes on average; build {:.2} s ({:.2} µs/insert); \
         index memory {:.1} MB = {:.1} bytes/publication",
        name_bytes as f64 / N as f64,
        build.as_secs_f64(),
        build.as_secs_f64() * 1e6 / N as f64,
        mem as f64 / 1e6,
        mem as f64 / N as f64,
    );
    index
}

/// Search times, index against the linear scan, for patterns of every kind.
fn searches(index: &SearchIndex, names: &[String]) {
    let name_of = |id: PubId| connected(id).then(|| names[id as usize].as_str());
    let patterns = [
        ("selective", "user12345_"),
        ("selective", "lecture7_notes"),
        ("selective", "thunder_velvet"),
        ("no match", "zebra"),
        ("no match (2 bytes)", "zq"),
        ("rare (1 byte)", "Q"),
        ("broad", "mp3"),
        ("broad (1 byte)", "e"),
        ("empty", ""),
    ];
    println!("pattern                          results  index µs  linear µs");
    for (kind, pattern) in patterns {
        let hits = search(index, pattern, name_of);
        assert_eq!(hits, linear(pattern, name_of), "{pattern}");
        let indexed = median_micros(
            || {
                let mut n = 0;
                index.search(pattern, CAP, name_of, |_| n += 1);
                std::hint::black_box(n);
            },
            21,
        );
        let scanned = median_micros(
            || {
                std::hint::black_box(linear(pattern, name_of));
            },
            5,
        );
        println!(
            "{:<32} {:>7} {:>9.1} {:>10.1}",
            format!("{kind} {pattern:?}"),
            hits.len(),
            indexed,
            scanned
        );
    }
}

/// Removes CHURN random publications, then publishes CHURN new names (which reuse
/// the freed ids: inserts into the middle of the lists).
fn churn(index: &mut SearchIndex, names: &mut [String]) {
    let mut rng = Rng(7);
    let mut gone = Vec::new();
    let mut seen = HashSet::new();
    while gone.len() < CHURN {
        let id = rng.below(N) as PubId;
        if seen.insert(id) {
            gone.push(id);
        }
    }
    let t = Instant::now();
    for &id in &gone {
        assert!(index.remove(id, &names[id as usize]));
    }
    let removal = t.elapsed();
    let fresh = realistic_names(CHURN);
    let t = Instant::now();
    let mut ids = Vec::with_capacity(fresh.len());
    for name in &fresh {
        ids.push(index.insert(name));
    }
    let reinsert = t.elapsed();
    for (id, name) in ids.into_iter().zip(fresh) {
        names[id as usize] = name;
    }
    println!(
        "churn: remove {:.2} µs/op, insert into reused ids {:.2} µs/op; memory after {:.1} bytes/publication",
        removal.as_secs_f64() * 1e6 / CHURN as f64,
        reinsert.as_secs_f64() * 1e6 / CHURN as f64,
        index.memory_bytes() as f64 / N as f64
    );
}

/// A user of 5,000 files disconnecting and connecting again: its ids (a run
/// published together) removed and reinserted in one batch each.
fn batch(index: &mut SearchIndex, names: &mut [String]) {
    let run: Vec<PubId> = (500_000..505_000).collect();
    let t = Instant::now();
    let removed = index.remove_many(run.iter().map(|&id| (id, names[id as usize].as_str())));
    let batch_removal = t.elapsed();
    let t = Instant::now();
    let back = index.insert_many(run.iter().map(|&id| names[id as usize].as_str()));
    let batch_insert = t.elapsed();
    let moved: Vec<(PubId, String)> = back
        .iter()
        .zip(&run)
        .map(|(&new, &old)| (new, names[old as usize].clone()))
        .collect();
    for (id, name) in moved {
        names[id as usize] = name;
    }
    println!(
        "batch of {removed} (one user): remove_many {:.2} µs/publication, insert_many {:.2} µs/publication",
        batch_removal.as_secs_f64() * 1e6 / removed as f64,
        batch_insert.as_secs_f64() * 1e6 / back.len() as f64
    );
}

/// Deterministic xorshift generator for the benchmark's names.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Names like real shares: lecture notes, songs, photos, documents.
fn realistic_names(n: usize) -> Vec<String> {
    const WORDS: [&str; 48] = [
        "love", "night", "summer", "blue", "river", "dance", "heart", "fire", "rain", "city",
        "dream", "light", "road", "stone", "wild", "gold", "moon", "star", "ocean", "shadow",
        "sweet", "home", "time", "world", "angel", "ghost", "storm", "winter", "paper", "glass",
        "silver", "train", "garden", "mirror", "echo", "velvet", "thunder", "desert", "island",
        "forest", "candle", "letter", "memory", "highway", "midnight", "sunrise", "harbor",
        "window",
    ];
    const SUBJECTS: [&str; 8] = [
        "algebra",
        "physics",
        "networks",
        "compilers",
        "databases",
        "history",
        "biology",
        "statistics",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|i| {
            let w = |rng: &mut Rng| WORDS[rng.below(WORDS.len())];
            match rng.below(5) {
                0 => format!("user{}_lecture{}_notes.pdf", i % 20_000, rng.below(40)),
                1 => format!("song_{}_{}_{}.mp3", w(&mut rng), w(&mut rng), w(&mut rng)),
                2 => format!("IMG_{:05}.jpg", rng.below(100_000)),
                3 => format!(
                    "{}_{}_{}.txt",
                    SUBJECTS[rng.below(SUBJECTS.len())],
                    w(&mut rng),
                    rng.below(1000)
                ),
                _ => format!(
                    "{} - {} ({}).flac",
                    w(&mut rng),
                    w(&mut rng),
                    1960 + rng.below(60)
                ),
            }
        })
        .collect()
}

fn median_micros(mut f: impl FnMut(), reps: usize) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}
