//! Lookalike names through the real server (issue 26, item 9): invisible, bidi and
//! mixed-script names are refused with the operation's "any other error" code, and
//! single-script names in any script are accepted.

mod support;

use support::*;

const DT: &str = "17/12/2014 13:20:35";

/// Names that render as (or hide inside) another name: one of each kind.
const LOOKALIKES: &[(&str, &str)] = &[
    ("zero width space", "ali\u{200B}ce"),
    ("zero width joiner", "ali\u{200D}ce"),
    ("left-to-right mark", "alice\u{200E}"),
    ("right-to-left override", "alice\u{202E}"),
    ("right-to-left isolate", "\u{2067}alice"),
    ("arabic letter mark", "alice\u{061C}"),
    ("byte order mark", "\u{FEFF}alice"),
    ("word joiner", "ali\u{2060}ce"),
    ("invisible times", "ali\u{2062}ce"),
    ("soft hyphen", "ali\u{00AD}ce"),
    ("tag characters", "alice\u{E0061}\u{E007F}"),
    ("hangul filler", "alice\u{3164}"),
    ("hangul choseong filler", "\u{115F}alice"),
    ("hangul jungseong filler", "alice\u{1160}"),
    ("halfwidth hangul filler", "alice\u{FFA0}"),
    ("fullwidth letter mixed in", "ａlice"),
    ("fullwidth name", "ａｌｉｃｅ"),
    ("mathematical bold letter", "𝐚lice"),
    ("cyrillic a mixed in", "\u{0430}lice"),
    ("greek omicron mixed in", "b\u{03BF}b"),
    ("variation selector", "alice\u{FE0F}"),
    ("decomposed accent", "cafe\u{0301}"),
];

/// Names in one script (or Latin with a CJK script): all accepted.
const GOOD: &[&str] = &[
    "alice",
    "café",
    "日本",
    "Кирилл",
    "ελένη",
    "東京タワー",
    "한국어",
    "notes_日本.txt",
];

#[test]
fn lookalike_user_names_are_refused_by_register() {
    let s = Server::start(&[]);
    for (kind, name) in LOOKALIKES {
        assert_eq!(
            code(s.addr, &["REGISTER", DT, name]),
            2,
            "REGISTER of a name with a {kind} ({name:?})"
        );
    }
    // Nothing was registered: the plain name is still free.
    assert_eq!(code(s.addr, &["REGISTER", DT, "alice"]), 0);
}

#[test]
fn lookalike_file_names_are_refused_by_publish() {
    let s = Server::start(&[]);
    assert_eq!(code(s.addr, &["REGISTER", DT, "alice"]), 0);
    assert_eq!(code(s.addr, &["CONNECT", DT, "alice", "5000"]), 0);
    assert_eq!(
        code(
            s.addr,
            &["PUBLISH", DT, "alice", "report\u{202E}fdp.exe", "d"]
        ),
        4,
        "a file name that renders as reportexe.pdf"
    );
    for (kind, name) in LOOKALIKES {
        let file = format!("{name}.txt");
        assert_eq!(
            code(s.addr, &["PUBLISH", DT, "alice", &file, "d"]),
            4,
            "PUBLISH of a file name with a {kind} ({file:?})"
        );
    }
    let listed = list_fields(&call(s.addr, &["LIST_CONTENT", DT, "alice", "alice"]));
    assert_eq!(listed, ["0"], "nothing was published");
}

#[test]
fn single_script_names_in_any_script_are_accepted() {
    let s = Server::start(&[]);
    for name in GOOD {
        assert_eq!(
            code(s.addr, &["REGISTER", DT, name]),
            0,
            "REGISTER {name:?}"
        );
    }
    assert_eq!(code(s.addr, &["CONNECT", DT, "alice", "5000"]), 0);
    for name in GOOD {
        assert_eq!(
            code(s.addr, &["PUBLISH", DT, "alice", name, "d"]),
            0,
            "PUBLISH {name:?}"
        );
    }
}
