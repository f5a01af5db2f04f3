//! How sizes and rates read for a person: `512 B`, `1.2 GiB`, and the one line that
//! sums up a download.

use super::peer::Done;

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
