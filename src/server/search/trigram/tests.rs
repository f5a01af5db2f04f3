//! Tests of the substring index: against a model (names by id, connected owners)
//! and, by property, against a linear scan.

use super::*;
use std::collections::{BTreeSet, HashSet};

/// The reference: names by id, the owners connected.
#[derive(Default)]
struct Model {
    names: Vec<Option<(String, u32)>>,
    connected: HashSet<u32>,
}

impl Model {
    fn put(&mut self, id: PubId, name: &str, owner: u32) {
        let i = id as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        assert!(self.names[i].is_none(), "id {id} handed out twice");
        self.names[i] = Some((name.to_string(), owner));
    }

    fn name_of(&self, id: PubId) -> Option<&str> {
        match self.names.get(id as usize)? {
            Some((name, owner)) if self.connected.contains(owner) => Some(name),
            _ => None,
        }
    }

    /// The ids of the publications held.
    fn live(&self) -> Vec<PubId> {
        (0..self.names.len() as u32)
            .filter(|&i| self.names[i as usize].is_some())
            .collect()
    }

    fn linear(&self, pattern: &str, cap: usize) -> Vec<PubId> {
        (0..self.names.len() as u32)
            .filter(|&id| self.name_of(id).is_some_and(|n| n.contains(pattern)))
            .take(cap)
            .collect()
    }
}

fn search(index: &SearchIndex, model: &Model, pattern: &str, cap: usize) -> Vec<PubId> {
    let mut out = Vec::new();
    let n = index.search(pattern, cap, |id| model.name_of(id), |id| out.push(id));
    assert_eq!(n, out.len());
    out
}

fn build(names: &[&str]) -> (SearchIndex, Model) {
    let mut index = SearchIndex::new();
    let mut model = Model::default();
    model.connected.insert(0);
    for name in names {
        let id = index.insert(name);
        model.put(id, name, 0);
    }
    (index, model)
}

#[test]
fn finds_substrings_in_id_order() {
    let (index, model) = build(&["lecture1_notes.pdf", "song.mp3", "notes.txt", "no"]);
    assert_eq!(search(&index, &model, "notes", 10), vec![0, 2]);
    assert_eq!(search(&index, &model, "mp3", 10), vec![1]);
    assert_eq!(search(&index, &model, "no", 10), vec![0, 2, 3]);
    assert_eq!(search(&index, &model, "n", 10), vec![0, 1, 2, 3]);
}

#[test]
fn is_case_sensitive() {
    let (index, model) = build(&["Notes.pdf", "notes.pdf"]);
    assert_eq!(search(&index, &model, "Notes", 10), vec![0]);
    assert_eq!(search(&index, &model, "N", 10), vec![0]);
}

#[test]
fn empty_pattern_matches_everything_up_to_the_cap() {
    let (index, model) = build(&["a", "b", "", "ccc"]);
    assert_eq!(search(&index, &model, "", 10), vec![0, 1, 2, 3]);
    assert_eq!(search(&index, &model, "", 2), vec![0, 1]);
    assert_eq!(search(&index, &model, "", 0), Vec::<PubId>::new());
}

#[test]
fn trigrams_in_the_wrong_order_are_not_a_match() {
    let (index, model) = build(&["abcXbcd"]);
    assert_eq!(search(&index, &model, "abcd", 10), Vec::<PubId>::new());
    assert_eq!(search(&index, &model, "abcX", 10), vec![0]);
}

#[test]
fn publications_of_disconnected_owners_are_left_out() {
    let mut index = SearchIndex::new();
    let mut model = Model::default();
    for (name, owner) in [("x.pdf", 1), ("y.pdf", 2), ("z.pdf", 1)] {
        let id = index.insert(name);
        model.put(id, name, owner);
    }
    model.connected.insert(1);
    assert_eq!(search(&index, &model, ".pdf", 10), vec![0, 2]);
    assert_eq!(search(&index, &model, ".pdf", 1), vec![0]);
}

#[test]
fn removed_publications_are_not_found_and_their_ids_are_reused() {
    let (mut index, mut model) = build(&["one.pdf", "two.pdf", "three.pdf"]);
    assert!(index.remove(1, "two.pdf"));
    assert!(!index.remove(1, "two.pdf"), "a second remove is refused");
    model.names[1] = None;
    assert_eq!(search(&index, &model, ".pdf", 10), vec![0, 2]);
    assert_eq!(search(&index, &model, "two", 10), Vec::<PubId>::new());
    assert_eq!(index.insert("four.pdf"), 1);
    model.put(1, "four.pdf", 0);
    assert_eq!(search(&index, &model, ".pdf", 10), vec![0, 1, 2]);
    assert_eq!(index.len(), 3);
}

#[test]
fn short_patterns_absent_from_every_name_are_answered_from_the_counts() {
    let (index, model) = build(&["abc", "abd"]);
    let mut asked = 0;
    for pattern in ["z", "ca", "é"] {
        index.search(
            pattern,
            10,
            |_| -> Option<&str> {
                asked += 1;
                None
            },
            |_| {},
        );
    }
    assert_eq!(asked, 0);
    assert_eq!(search(&index, &model, "bd", 10), vec![1]);
}

#[test]
fn rare_short_patterns_are_found_through_the_trigram_lists() {
    let mut names: Vec<String> = (0..2000).map(|i| format!("file{i}.txt")).collect();
    names[1500] = "Qz".to_string();
    names[1700] = "aQzb.txt".to_string();
    names[1900] = "Q".to_string();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (index, model) = build(&refs);
    assert_eq!(search(&index, &model, "Qz", 10), vec![1500, 1700]);
    assert_eq!(search(&index, &model, "Q", 10), vec![1500, 1700, 1900]);
    assert_eq!(search(&index, &model, "z", 1), vec![1500]);
}

#[test]
fn multi_byte_characters_match_by_bytes() {
    let (index, model) = build(&["café.txt", "naïve", "日本語"]);
    assert_eq!(search(&index, &model, "é", 10), vec![0]);
    assert_eq!(search(&index, &model, "本", 10), vec![2]);
    assert_eq!(search(&index, &model, "ïv", 10), vec![1]);
}

#[test]
fn patterns_longer_than_any_name_or_odd_do_not_panic() {
    let (index, model) = build(&["abc"]);
    let long = "x".repeat(10_000);
    assert!(search(&index, &model, &long, 10).is_empty());
    assert!(search(&index, &model, "\0\0\0", 10).is_empty());
    let mut index = SearchIndex::new();
    assert!(!index.remove(12345, "abc"));
    assert_eq!(
        index.search("abc", 10, |_| -> Option<&str> { None }, |_| {}),
        0
    );
}

#[test]
fn memory_is_given_back_when_everything_is_removed() {
    let mut index = SearchIndex::new();
    let ids: Vec<_> = (0..1000)
        .map(|i| index.insert(&format!("f{i}.pdf")))
        .collect();
    assert!(index.memory_bytes() > 0);
    for (i, id) in ids.into_iter().enumerate() {
        assert!(index.remove(id, &format!("f{i}.pdf")));
    }
    assert!(index.lists.is_empty());
    assert!(index.is_empty());
}

/// Applies `ops` to a posting list with `block_len` and to a set; they agree.
fn check_list(block_len: usize, ops: &[(bool, u32)]) {
    let mut list = PostingList::default();
    let mut set = BTreeSet::new();
    for &(insert, id) in ops {
        if insert {
            list.insert(id, block_len);
            set.insert(id);
        } else {
            assert_eq!(list.remove(id, block_len), set.remove(&id));
        }
        assert_list(&list, &set, block_len);
    }
    // Every target finds the next id.
    for target in 0..=ops.iter().map(|o| o.1).max().unwrap_or(0) + 1 {
        let mut c = Cursor::new(&list);
        assert_eq!(c.seek(target), set.range(target..).next().copied());
    }
}

/// `list` holds exactly `set`, in well-formed blocks of at most `block_len`.
fn assert_list(list: &PostingList, set: &BTreeSet<u32>, block_len: usize) {
    let mut got = Vec::new();
    for b in &list.blocks {
        assert!(b.len as usize <= block_len && b.len > 0);
        let before = got.len();
        b.decode_into(&mut got);
        assert_eq!(got.len() - before, b.len as usize);
        assert_eq!(*got.last().unwrap(), b.last);
    }
    let lasts: Vec<u32> = list.blocks.iter().map(|b| b.last).collect();
    assert_eq!(list.lasts, lasts);
    assert_eq!(got, set.iter().copied().collect::<Vec<_>>());
    assert_eq!(list.len as usize, set.len());
}

proptest::proptest! {
    #[test]
    fn removing_sorted_ids_at_once_matches_a_set(
        block_len in proptest::prop_oneof![2usize..9, proptest::strategy::Just(BLOCK_LEN)],
        inserts in proptest::collection::btree_set(0u32..2000, 0..600),
        removes in proptest::collection::btree_set(0u32..2000, 0..600),
    ) {
        let mut list = PostingList::default();
        let mut set = BTreeSet::new();
        for &id in &inserts {
            list.insert(id, block_len);
            set.insert(id);
        }
        let ids: Vec<u32> = removes.iter().copied().collect();
        let removed = list.remove_sorted(&ids, block_len);
        let expected = removes.iter().filter(|id| set.remove(id)).count();
        proptest::prop_assert_eq!(removed, expected);
        assert_list(&list, &set, block_len);
        // The list still works after the compaction.
        list.insert(1000, block_len);
        set.insert(1000);
        assert_list(&list, &set, block_len);
    }
}

#[test]
fn posting_lists_split_and_merge_blocks() {
    let mut ops: Vec<(bool, u32)> = (0..100).map(|i| (true, i * 3)).collect();
    ops.extend((0..100).map(|i| (true, i * 3 + 1)));
    ops.extend((0..150).map(|i| (false, i * 2)));
    ops.extend([
        (true, 1_000_000),
        (true, 0),
        (false, 1_000_000),
        (true, 200_000),
    ]);
    check_list(4, &ops);
    check_list(BLOCK_LEN, &ops);
}

proptest::proptest! {
    #[test]
    fn posting_list_matches_a_set(
        block_len in 2usize..6,
        ops in proptest::collection::vec((proptest::bool::ANY, 0u32..300), 0..200),
    ) {
        check_list(block_len, &ops);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u32),
    /// Remove the publication at this position among the live ones (modulo).
    Remove(usize),
    Connect(u32),
    Disconnect(u32),
    Search(String, usize),
    /// Insert these names (with their owners) in one batch.
    InsertMany(Vec<(String, u32)>),
    /// Remove the publications at these positions among the live ones, at once.
    RemoveMany(Vec<usize>),
}

/// Small alphabet, with multi-byte characters, so that substrings collide.
fn text(max_chars: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', '.', 'é', '日']),
        0..max_chars,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (text(8), 0u32..4).prop_map(|(n, o)| Op::Insert(n, o)),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => (0u32..4).prop_map(Op::Connect),
        1 => (0u32..4).prop_map(Op::Disconnect),
        3 => (text(4), prop_oneof![Just(usize::MAX), 0usize..5]).prop_map(|(p, c)| Op::Search(p, c)),
        1 => proptest::collection::vec((text(8), 0u32..4), 0..8).prop_map(Op::InsertMany),
        1 => proptest::collection::vec(any::<usize>(), 0..8).prop_map(Op::RemoveMany),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn index_answers_like_a_linear_scan(
        block_len in 2usize..5,
        ops in proptest::collection::vec(op(), 0..150),
    ) {
        let mut index = SearchIndex::with_block_len(block_len);
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Insert(name, owner) => {
                    let id = index.insert(&name);
                    model.put(id, &name, owner);
                }
                Op::Remove(k) => {
                    let live = model.live();
                    if !live.is_empty() {
                        let id = live[k % live.len()];
                        let (name, _) = model.names[id as usize].take().unwrap();
                        proptest::prop_assert!(index.remove(id, &name));
                    }
                }
                Op::InsertMany(batch) => {
                    let ids = index.insert_many(batch.iter().map(|(n, _)| n.as_str()));
                    proptest::prop_assert_eq!(ids.len(), batch.len());
                    for (id, (name, owner)) in ids.into_iter().zip(&batch) {
                        model.put(id, name, *owner);
                    }
                }
                Op::RemoveMany(positions) => remove_many(&mut index, &mut model, positions)?,
                Op::Connect(o) => {
                    model.connected.insert(o);
                }
                Op::Disconnect(o) => {
                    model.connected.remove(&o);
                }
                Op::Search(pattern, cap) => {
                    proptest::prop_assert_eq!(
                        search(&index, &model, &pattern, cap),
                        model.linear(&pattern, cap),
                        "pattern {:?} cap {}", pattern, cap
                    );
                }
            }
        }
        check_final_state(&index, &model)?;
    }
}

/// Op::RemoveMany: the publications at `positions` among the live ones (an id
/// given twice, or not allocated, is skipped).
fn remove_many(
    index: &mut SearchIndex,
    model: &mut Model,
    positions: Vec<usize>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let live = model.live();
    let mut gone: Vec<(PubId, String)> = Vec::new();
    if !live.is_empty() {
        for k in positions {
            let id = live[k % live.len()];
            if let Some((name, _)) = model.names[id as usize].take() {
                gone.push((id, name));
            }
        }
    }
    // An id given twice, or not allocated, is skipped.
    let mut items: Vec<(PubId, &str)> = gone.iter().map(|(id, n)| (*id, n.as_str())).collect();
    if let Some(&first) = items.first() {
        items.push(first);
    }
    items.push((u32::MAX, "x"));
    proptest::prop_assert_eq!(index.remove_many(items), gone.len());
    Ok(())
}

/// Every pattern over the final state, in both short-pattern modes.
fn check_final_state(
    index: &SearchIndex,
    model: &Model,
) -> Result<(), proptest::test_runner::TestCaseError> {
    for pattern in ["", "a", "é", "日", "ab", "a.", "bé", "abc", "c.é", "日a"] {
        proptest::prop_assert_eq!(
            search(index, model, pattern, usize::MAX),
            model.linear(pattern, usize::MAX)
        );
        let mut got = Vec::new();
        if (1..=2).contains(&pattern.len()) {
            index.union(pattern.as_bytes(), 0, &mut |id| {
                if model.name_of(id).is_some_and(|n| n.contains(pattern)) {
                    got.push(id);
                }
                false
            });
            proptest::prop_assert_eq!(&got, &model.linear(pattern, usize::MAX));
        }
    }
    Ok(())
}

/// A search done in steps of a few candidates finds what one search finds, in
/// the same order, with every step within its candidate budget.
#[test]
fn a_search_in_steps_finds_what_one_search_finds() {
    let names: Vec<String> = (0..600)
        .map(|i| match i % 3 {
            0 => format!("file{i}.txt"),
            1 => format!("a{i}"),
            _ => format!("notes-{i}.pdf"),
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (index, model) = build(&names);
    for pattern in ["", "f", "fi", "e1", "file1", "1.t", ".pdf", "zz", "s-5"] {
        for cap in [1, 7, 1000] {
            let whole = search(&index, &model, pattern, cap);
            let mut stepped = Vec::new();
            let mut from = 0;
            loop {
                let step = Step {
                    from,
                    cap: cap - stepped.len(),
                    candidates: 5,
                };
                let p =
                    index.search_step(pattern, step, |id| model.name_of(id), |id| stepped.push(id));
                assert!(p.checked <= 5, "{pattern:?}: {p:?}");
                match p.resume {
                    Some(next) if stepped.len() < cap => from = next,
                    _ => break,
                }
            }
            assert_eq!(stepped, whole, "{pattern:?} cap {cap}");
        }
    }
}
