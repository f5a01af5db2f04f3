//! Local wall-clock time in the protocol's DATETIME form, `dd/mm/YYYY HH:MM:SS`
//! (PROTOCOL.md sections 1 and 4).
//!
//! Owns: the one format string. Does not own: asking the time service (`client`).

/// The DATETIME format of the protocol, as a chrono format string.
pub(crate) const FORMAT: &str = "%d/%m/%Y %H:%M:%S";

/// The current local time as `dd/mm/YYYY HH:MM:SS`.
pub(crate) fn now() -> String {
    chrono::Local::now().format(FORMAT).to_string()
}

/// True when `s` has the shape `dd/mm/YYYY HH:MM:SS` and is a real date and time.
pub(crate) fn is_datetime(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, FORMAT).is_ok() && s.len() == 19
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_the_protocol_shape() {
        let s = now();
        assert!(is_datetime(&s), "{s}");
        assert_eq!(&s[2..3], "/");
        assert_eq!(&s[10..11], " ");
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(is_datetime("17/12/2014 13:20:35"));
        assert!(!is_datetime("2014-12-17 13:20:35"));
        assert!(!is_datetime("32/12/2014 13:20:35"));
        assert!(!is_datetime("17/12/2014"));
    }
}
