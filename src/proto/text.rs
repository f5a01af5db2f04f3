//! Text rules for strings that come from the network and are shown to people.
//!
//! Owns: the lookalike rule for user and file names (no invisible, format or bidi
//! characters, no compatibility forms, no mixed-script confusables; UTS #39), and the
//! one escaping of network text for a terminal or console.
//! Does not own: the byte limits and the whitespace/control rule (see `wire`).

use std::borrow::Cow;
use std::fmt::Write;

use unicode_script::{Script, ScriptExtension};
use unicode_security::mixed_script::AugmentedScriptSet;
use unicode_security::{MixedScript, is_potential_mixed_script_confusable_char};

/// Characters that render as nothing or reorder the text around them: general
/// category Cf (ZWSP, the bidi controls, BOM, word joiner, soft hyphen, tag
/// characters, ...) and the rest of Default_Ignorable_Code_Point (the Hangul fillers,
/// variation selectors, the combining grapheme joiner, Mongolian format controls).
/// Inclusive ranges, sorted.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1345F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// True for a format, bidi or otherwise invisible character (see [`INVISIBLE`]).
pub(crate) fn is_invisible(c: char) -> bool {
    INVISIBLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// True when `name` cannot pass for another name on screen:
/// - no invisible, format or bidi character ([`is_invisible`]);
/// - no unassigned or private-use character (script Unknown);
/// - already in NFKC: no fullwidth or mathematical letters, ligatures, or decomposed
///   accents (`ａlice`, `𝐚lice` and `e` + U+0301 would show as `alice` and `é`);
/// - one script (UTS #39 "single script", in any script: é, 日本, Кирилл), or Latin
///   with Han/Hiragana/Katakana/Hangul/Bopomofo or with one other recommended script
///   that is not Cyrillic or Greek (UTS #39 "moderately restrictive") when none of
///   its letters is one UTS #39 lists as confusable across scripts. `alicе` with a
///   Cyrillic `е` is refused, and so is `bօb` with an Armenian `օ`.
///
/// Whole-script confusables (a name all in Cyrillic that looks Latin) stay accepted:
/// the rule cannot tell them from a real Cyrillic name.
pub(crate) fn is_unambiguous_name(name: &str) -> bool {
    if name
        .chars()
        .any(|c| is_invisible(c) || is_unknown_script(c))
    {
        return false;
    }
    if !unicode_normalization::is_nfkc(name) {
        return false;
    }
    name.is_single_script() || is_moderately_restrictive_without_confusables(name)
}

fn is_unknown_script(c: char) -> bool {
    ScriptExtension::from(c).contains_script(Script::Unknown)
}

/// The mixed-script case of [`is_unambiguous_name`]: the UTS #39 restriction level
/// computation, on every character (file names hold `/` and `.`, which the identifier
/// profile would refuse), accepting "highly" and "moderately restrictive".
fn is_moderately_restrictive_without_confusables(name: &str) -> bool {
    let mut not_latin = AugmentedScriptSet::default();
    let mut confusable = false;
    for c in name.chars() {
        let set = AugmentedScriptSet::for_char(c);
        if !set.is_all() && !set.base.contains_script(Script::Latin) {
            confusable |= is_potential_mixed_script_confusable_char(c);
            not_latin.intersect_with(set);
        }
    }
    if not_latin.is_all() {
        return false;
    }
    // Highly restrictive: Latin with the scripts of Chinese, Japanese or Korean.
    if not_latin.hanb || not_latin.jpan || not_latin.kore {
        return true;
    }
    // Moderately restrictive: Latin with one other recommended script, except
    // Cyrillic and Greek; and here no letter that looks like one of another script.
    let mut scripts = not_latin.base.iter();
    match (scripts.next(), scripts.next()) {
        (Some(script), None) => {
            script.is_recommended()
                && script != Script::Cyrillic
                && script != Script::Greek
                && !confusable
        }
        _ => false,
    }
}

/// True for a character that must not reach a terminal as it is: a control
/// character (C0, DEL, C1: escape sequences, newlines that forge lines), a format,
/// bidi or invisible one ([`is_invisible`]: text that reorders or hides), or a line
/// or paragraph separator.
fn needs_escape(c: char) -> bool {
    c.is_control() || is_invisible(c) || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` as it may be printed on a terminal or console: every character of
/// [`needs_escape`] written as `\x1b` (below U+0080) or `\u{202e}`, everything else
/// as it is. Borrowed when nothing needed escaping. A backslash is not escaped: an
/// escaped line can look like a name that holds `\x1b` as text, but it can never
/// act on the terminal.
pub(crate) fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    push_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Appends [`escape_for_terminal`]`(s)` to `out`.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    push_escaped_where(out, s, needs_escape);
}

/// `s` with every character outside printable ASCII (space included) written as
/// `\x1b` (below U+0080) or `\u{430}`: for a name that failed validation, which must
/// neither act on a terminal nor pass for a valid name on screen.
pub(crate) fn escape_beyond_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    push_escaped_where(&mut out, s, |c| !(c.is_ascii_graphic() || c == ' '));
    out
}

/// Appends `s` to `out`, each character that `escape` picks written as `\x1b` (below
/// U+0080) or `\u{202e}`.
fn push_escaped_where(out: &mut String, s: &str, escape: impl Fn(char) -> bool) {
    for c in s.chars() {
        if !escape(c) {
            out.push(c);
        } else if c.is_ascii() {
            // Writing into a String cannot fail.
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_bidi_and_format_characters() {
        assert_eq!(
            escape_for_terminal("\x1b]0;pwned\x07\x1b[2J"),
            "\\x1b]0;pwned\\x07\\x1b[2J"
        );
        assert_eq!(
            escape_for_terminal("bob\ns> DELETE FROM alice"),
            "bob\\x0as> DELETE FROM alice"
        );
        assert_eq!(
            escape_for_terminal("a\rb\x7f\u{9b}c"),
            "a\\x0db\\x7f\\u{9b}c"
        );
        assert_eq!(
            escape_for_terminal("report\u{202E}fdp.exe"),
            "report\\u{202e}fdp.exe"
        );
        assert_eq!(
            escape_for_terminal("a\u{200B}\u{FEFF}\u{2028}"),
            "a\\u{200b}\\u{feff}\\u{2028}"
        );
    }

    #[test]
    fn printable_text_is_borrowed_unchanged() {
        for s in [
            "alice",
            "café 日本 Кирилл",
            "C:\\notes",
            "17/12/2014 13:20:35",
            "",
        ] {
            assert!(matches!(escape_for_terminal(s), Cow::Borrowed(b) if b == s));
        }
    }

    #[test]
    fn single_script_names_in_any_script_are_accepted() {
        for name in [
            "alice",
            "/tmp/notes.txt",
            "café",
            "Müller",
            "日本",
            "東京タワー",
            "한국어",
            "Кирилл",
            "ελένη",
            "שלום",
            "मराठी",
            "report-2024_v2.pdf",
        ] {
            assert!(is_unambiguous_name(name), "{name:?} refused");
        }
    }

    #[test]
    fn latin_with_one_distinct_script_is_accepted() {
        for name in ["notes_日本.txt", "slides-한국어.pdf", "notes_エクセル.txt"] {
            assert!(is_unambiguous_name(name), "{name:?} refused");
        }
        // Latin with letters that UTS #39 finds confusable across scripts: refused.
        assert!(!is_unambiguous_name("talk_हिन्दी.txt"));
    }

    #[test]
    fn lookalikes_are_refused() {
        for name in [
            "ali\u{200B}ce",
            "report\u{202E}fdp.exe",
            "\u{FEFF}alice",
            "ali\u{2060}ce",
            "ali\u{00AD}ce",
            "alice\u{E0061}\u{E007F}",
            "\u{3164}",
            "a\u{115F}",
            "a\u{1160}",
            "a\u{FFA0}",
            "ａlice",
            "ａｌｉｃｅ",
            "𝐚lice",
            "\u{0430}lice",
            "b\u{03BF}b",
            "b\u{0585}b",
            "cafe\u{0301}",
            "alice\u{FE0F}",
            "ali\u{034F}ce",
            "a\u{180E}b",
            "a\u{E000}",
        ] {
            assert!(!is_unambiguous_name(name), "{name:?} accepted");
        }
    }

    #[test]
    fn invisible_table_is_sorted_and_disjoint() {
        for w in INVISIBLE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
        }
        assert!(is_invisible('\u{E007F}'));
        assert!(!is_invisible('a'));
        assert!(!is_invisible('\u{3165}'));
    }
}
