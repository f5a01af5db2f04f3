//! Connection-thread start-up, both ways in the same run: the ceiling's pthread
//! spawner (`benches/bench/pthread.rs`, no alternate signal stack) against
//! peerdex's `spawn_connection_thread` (`std::thread::Builder` with
//! `stack_size(CONNECTION_STACK)`). Each round starts
//! THREADS short threads, with up to IN_FLIGHT alive at once (as a loaded server
//! holds many connections open), and waits for all of them; rounds alternate.
//!
//! Run: `cargo bench --bench spawn` (prints threads per second for each way).

use std::sync::mpsc;
use std::time::Instant;

use peerdex::internals::spawn_connection_thread;

#[path = "bench/pthread.rs"]
mod pthread;

const THREADS: usize = 20_000;
const IN_FLIGHT: usize = 512;
const ROUNDS: usize = 3;

fn round(spawn: &dyn Fn(Box<dyn FnOnce() + Send>)) -> f64 {
    let (tx, rx) = mpsc::channel::<()>();
    let started = Instant::now();
    let mut alive = 0;
    for _ in 0..THREADS {
        if alive == IN_FLIGHT {
            rx.recv().unwrap();
            alive -= 1;
        }
        let tx = tx.clone();
        spawn(Box::new(move || {
            // A little stack in use, as a handler has.
            let buf = std::hint::black_box([0u8; 4096]);
            let _ = tx.send(());
            std::hint::black_box(buf);
        }));
        alive += 1;
    }
    for _ in 0..alive {
        rx.recv().unwrap();
    }
    THREADS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let pthread = |f: Box<dyn FnOnce() + Send>| pthread::spawn(f).unwrap();
    let std = |f: Box<dyn FnOnce() + Send>| spawn_connection_thread(f).unwrap();
    let (mut p, mut s) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        p.push(round(&pthread));
        s.push(round(&std));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!("threads/s, best of {ROUNDS} rounds of {THREADS} ({IN_FLIGHT} in flight):");
    println!("  pthread spawner       {:>9.0}  {p:.0?}", best(&p));
    println!("  std::thread::Builder  {:>9.0}  {s:.0?}", best(&s));
    println!("  ratio pthread/std     {:>9.2}", best(&p) / best(&s));
}
