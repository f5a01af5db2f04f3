//! Markdown tables for `peerdex bench`: a header, rows of cells, printed at once.
//!
//! Owns: layout only. Does not own: what the cells say (the sections format them).

/// One markdown table.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table followed by a blank line.
    pub fn print(&self) {
        println!("| {} |", self.header.join(" | "));
        println!("|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
        println!();
    }
}

/// Whether targets are judged: not in a smoke run, whose tiny measurements on a
/// busy machine say nothing about them.
static JUDGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// A smoke run: every target cell says "not judged".
pub fn judge_no_targets() {
    JUDGE.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// "met" or "MISSED" for a target check ("not judged (smoke)" in a smoke run).
pub fn verdict(ok: bool) -> String {
    if !JUDGE.load(std::sync::atomic::Ordering::Relaxed) {
        return "not judged (smoke)".into();
    }
    if ok { "met".into() } else { "MISSED".into() }
}

/// Bytes per second as MB/s text.
pub fn mb_per_s(bytes: u64, seconds: f64) -> String {
    format!("{:.0}", bytes as f64 / 1e6 / seconds.max(1e-9))
}
