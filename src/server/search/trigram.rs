//! A substring-search index over published file names, for SEARCH (PROTOCOL.md
//! section 1: every publication of a connected user whose file name contains PATTERN,
//! plain byte substring, case-sensitive, at most the result cap).
//!
//! Owns: publication ids ([`PubId`], dense, reused after removal), the n-gram
//! postings of the names, and the choice of candidates for a pattern. Does not own:
//! the names themselves, who owns a publication or whether that user is connected
//! (the search table, `search`, answers those through the `name_of` closure of
//! [`SearchIndex::search`]),
//! nor locking (the registry keeps the index inside its `RwLock`: searches take
//! `&self`, changes `&mut self`).
//!
//! # Design
//!
//! - **Trigram postings, delta + varint compressed, in blocks.** Every distinct
//!   3-byte window of a name's UTF-8 bytes has a posting list: the ascending ids of
//!   the names containing it, split into blocks of at most [`BLOCK_LEN`] ids; a block
//!   keeps its first and last id and the LEB128 varints of the gaps. A plain
//!   `Vec<u32>` per trigram would cost 4 bytes per posting and about 26 postings per
//!   30-byte name, over 100 bytes per publication; the gaps cost 1 byte in the common
//!   lists (`.pd`, `mp3`, ...) and 2-3 in the rare ones.
//! - **Precise removal, no tombstones, no compaction.** Removing an id rewrites only
//!   the varints around it in one block (a short walk and a few bytes moved);
//!   blocks that shrink below a quarter are merged into a neighbour by concatenation.
//!   Inserting a fresh id is an append; inserting a reused id (lower than the list's
//!   last) is the same local rewrite, and a full block splits in two. So the index
//!   never needs a compaction pass and never holds stale postings.
//! - **The index does not store the names.** The registry already holds every name
//!   and needs an id -> publication table anyway to write the results; asking it for
//!   the name of a candidate (`name_of`) saves a second copy of every name (~30 bytes
//!   plus an offset per publication). For the same reason the index does not know
//!   owners: `name_of` returns `None` for a publication whose owner is not connected.
//!   The price: [`SearchIndex::remove`] needs the name that was inserted, to find its
//!   postings.
//! - **The index allocates the ids** and reuses the most recently freed one (a
//!   stack), so ids stay below the highest number of publications ever held at once
//!   and the caller can keep a dense `Vec` slab indexed by id.
//! - **Patterns of 3 bytes or more:** the posting lists of the pattern's distinct
//!   trigrams are looked up (one missing: no match, answered at once), the
//!   [`MAX_LISTS`] rarest are intersected by leapfrogging cursors (a cursor skips
//!   whole blocks by binary search on their last id), and every id in the
//!   intersection is verified with a real substring check on its name (trigrams do
//!   not prove order or adjacency beyond 3 bytes). Results come in ascending id
//!   order, stopping at the cap.
//! - **Patterns of 0 to 2 bytes:** no trigram of the pattern exists. The index keeps
//!   counts of the names containing each byte and each byte pair (257 KiB, fixed).
//!   A count of 0 answers "no match" at once. Otherwise, when matches are common
//!   enough that a scan in id order reaches the cap soon, it scans (verifying each
//!   name); when they are rare, it collects the candidates from the trigram lists
//!   that contain the pattern (for `ab`: `abX` and `Xab` for every byte `X`, plus
//!   the names shorter than 3 bytes, which are kept in a list of their own), sorts
//!   them and verifies them. The empty pattern scans.
//! - **Batches.** [`SearchIndex::insert_many`] and [`SearchIndex::remove_many`] (a
//!   user's files when it connects or disconnects: the registry indexes only connected
//!   users' files) sort the (trigram, id) pairs of the whole batch and update each
//!   posting list in one go, so a long list is located once per batch, not once per
//!   name. Fresh ids (the start-up build) are plain appends and skip the sort.
//! - Ids are `u32`: the index would need 2^32 publications held at once to run out.
//!
//! Measured (`cargo bench --bench search_index`, release, a 2-core machine shared with
//! other builds): 1,000,000 names of 23 bytes on average, 44 bytes of index per
//! publication; insert of a fresh id 2.5 µs; selective, no-match and broad searches
//! 0-40 µs against 14-64 ms for a linear scan. Known cost: remove, and insert of a
//! reused id, take 30-40 µs there, mostly cache misses locating the id in ~20 long
//! lists; in batches (a user's 5,000 files) 12-16 µs per name. It does not show in
//! PUBLISH/DELETE throughput (docs/PERFORMANCE.md, Search); it does in CONNECT and
//! DISCONNECT of a user with thousands of files. The next step would be bitmap
//! containers for the dense lists (one cache line touched per list).
//!
//! Work of one search, beyond the verified candidates: for a selective pattern,
//! the rarest lists; for a broad one, until the cap is reached. A pattern whose
//! trigrams are all common while the pattern itself is rare, or many matches whose
//! owners are disconnected, still costs a walk over the candidates: `name_of`
//! answering `None` cannot be skipped by the index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A publication's id: dense, allocated by [`SearchIndex::insert`], reused after
/// [`SearchIndex::remove`].
pub(crate) type PubId = u32;

/// Most ids in one block of a posting list: large enough that the per-block header
/// (44 bytes) is small beside the gaps, small enough that rewriting a block in place
/// (insert of a reused id, remove) walks little.
pub(crate) const BLOCK_LEN: usize = 128;

/// Most posting lists intersected for one pattern (the rarest); the verification
/// catches what the others would have filtered. More lists cost a cursor each and
/// rarely remove a candidate the rarest ones kept.
pub(crate) const MAX_LISTS: usize = 4;

/// Key of the list of names shorter than 3 bytes (they have no trigram); trigram keys
/// are below 2^24.
const SHORT: u32 = 1 << 24;
/// Tags of the scratch keys of one name: bigrams and single bytes are counted, not
/// posted.
const PAIR_TAG: u32 = 1 << 25;
const BYTE_TAG: u32 = 1 << 26;

/// Where one step of a search starts and how far it may go
/// ([`SearchIndex::search_step`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// The lowest id looked at.
    pub(crate) from: PubId,
    /// Most results still wanted.
    pub(crate) cap: usize,
    /// Most candidates offered to `name_of` in this step.
    pub(crate) candidates: usize,
}

/// What one step of a search did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Results emitted.
    pub(crate) found: usize,
    /// Candidates offered to `name_of`.
    pub(crate) checked: usize,
    /// Where the next step starts (the step stopped at its cap or its candidate
    /// budget: more may follow); `None`: nothing is left to look at.
    pub(crate) resume: Option<PubId>,
}

/// A substring index over the names of publications. See the module documentation.
#[derive(Debug)]
pub(crate) struct SearchIndex {
    /// Trigram key (`b0 << 16 | b1 << 8 | b2`) or [`SHORT`] -> ascending ids.
    lists: HashMap<u32, PostingList, BuildHasherDefault<KeyHasher>>,
    /// Names containing each byte pair (`b0 << 8 | b1`).
    pair_counts: Box<[u32]>,
    /// Names containing each byte.
    byte_counts: Box<[u32]>,
    /// Bit `id` is set while `id` is allocated.
    allocated: Vec<u64>,
    /// Freed ids, the last freed on top.
    free: Vec<PubId>,
    /// Every id ever allocated is below this.
    end: u32,
    /// Allocated ids.
    live: usize,
    /// Most ids per block ([`BLOCK_LEN`]; smaller in tests, to exercise splits).
    block_len: usize,
    /// The grams of the name being inserted or removed.
    scratch: Vec<u32>,
}

impl Default for SearchIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl SearchIndex {
    /// An empty index.
    pub(crate) fn new() -> Self {
        Self::with_block_len(BLOCK_LEN)
    }

    fn with_block_len(block_len: usize) -> Self {
        SearchIndex {
            lists: HashMap::default(),
            pair_counts: vec![0; 1 << 16].into_boxed_slice(),
            byte_counts: vec![0; 256].into_boxed_slice(),
            allocated: Vec::new(),
            free: Vec::new(),
            end: 0,
            live: 0,
            block_len: block_len.clamp(2, BLOCK_LEN),
            scratch: Vec::new(),
        }
    }

    /// Number of publications in the index.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether the index holds no publication.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Indexes a publication named `name` and returns its id (the most recently freed
    /// one, else a new one).
    pub(crate) fn insert(&mut self, name: &str) -> PubId {
        let id = self.allocate();
        let mut keys = std::mem::take(&mut self.scratch);
        grams(name.as_bytes(), &mut keys);
        for &key in &keys {
            self.add(key, id);
        }
        self.scratch = keys;
        id
    }

    /// Indexes many publications at once (a user's files when it connects): the same
    /// ids and postings as [`SearchIndex::insert`] of each name in turn, but every
    /// posting list is updated in one go, so a long list is located once and stays
    /// in cache instead of being looked up again for each name.
    pub(crate) fn insert_many<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<PubId> {
        if self.free.is_empty() {
            // Fresh ids, above every id in the lists: each posting is an append to a
            // list's last block, nothing to locate, so no batching (its sort costs
            // more than it saves: the start-up build of the index is this case).
            return names.into_iter().map(|name| self.insert(name)).collect();
        }
        let mut ids = Vec::new();
        let mut pairs = Vec::new();
        let mut keys = std::mem::take(&mut self.scratch);
        for name in names {
            let id = self.allocate();
            ids.push(id);
            grams(name.as_bytes(), &mut keys);
            pairs.extend(keys.iter().map(|&key| (key, id)));
        }
        self.scratch = keys;
        pairs.sort_unstable();
        for (key, id) in pairs {
            self.add(key, id);
        }
        ids
    }

    /// Removes publication `id`, which must have been inserted with this `name`.
    /// Returns false (and changes nothing) if `id` is not allocated. A wrong name
    /// leaves postings of `id` behind: harmless for results (every candidate is
    /// verified against the caller's name) but they cost memory until `id` is reused
    /// and removed with that name.
    pub(crate) fn remove(&mut self, id: PubId, name: &str) -> bool {
        if !self.release(id) {
            return false;
        }
        let mut keys = std::mem::take(&mut self.scratch);
        grams(name.as_bytes(), &mut keys);
        for &key in &keys {
            self.take(key, id);
        }
        self.scratch = keys;
        true
    }

    /// Removes many publications at once (a user's files when it disconnects), like
    /// [`SearchIndex::remove`] of each in turn (ids not allocated are skipped), one
    /// posting list at a time (see [`SearchIndex::insert_many`]). Returns how many
    /// were removed.
    pub(crate) fn remove_many<'a>(
        &mut self,
        items: impl IntoIterator<Item = (PubId, &'a str)>,
    ) -> usize {
        let mut pairs = Vec::new();
        let mut removed = 0;
        let mut keys = std::mem::take(&mut self.scratch);
        for (id, name) in items {
            if !self.release(id) {
                continue;
            }
            removed += 1;
            grams(name.as_bytes(), &mut keys);
            pairs.extend(keys.iter().map(|&key| (key, id)));
        }
        self.scratch = keys;
        pairs.sort_unstable();
        let mut ids = Vec::new();
        for group in pairs.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            if key & (BYTE_TAG | PAIR_TAG) != 0 {
                for &(key, id) in group {
                    self.take(key, id);
                }
            } else if let Some(list) = self.lists.get_mut(&key) {
                // One pass over the list's blocks: removing ids one by one would
                // shift the whole block vector each time a block empties or merges.
                ids.clear();
                ids.extend(group.iter().map(|&(_, id)| id));
                list.remove_sorted(&ids, self.block_len);
                if list.len == 0 {
                    self.lists.remove(&key);
                }
            }
        }
        removed
    }

    /// A new id: the most recently freed one, else the next never used.
    fn allocate(&mut self) -> PubId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.end;
                self.end += 1;
                if self.allocated.len() * 64 < self.end as usize {
                    self.allocated.push(0);
                }
                id
            }
        };
        self.allocated[id as usize / 64] |= 1 << (id % 64);
        self.live += 1;
        id
    }

    /// Frees `id`; false if it was not allocated.
    fn release(&mut self, id: PubId) -> bool {
        if !self.is_allocated(id) {
            return false;
        }
        self.allocated[id as usize / 64] &= !(1 << (id % 64));
        self.live -= 1;
        self.free.push(id);
        true
    }

    /// Counts or posts one gram key of publication `id`.
    fn add(&mut self, key: u32, id: PubId) {
        if key & BYTE_TAG != 0 {
            self.byte_counts[(key & 0xff) as usize] += 1;
        } else if key & PAIR_TAG != 0 {
            self.pair_counts[(key & 0xffff) as usize] += 1;
        } else {
            self.lists
                .entry(key)
                .or_default()
                .insert(id, self.block_len);
        }
    }

    /// Undoes [`SearchIndex::add`].
    fn take(&mut self, key: u32, id: PubId) {
        if key & BYTE_TAG != 0 {
            let c = &mut self.byte_counts[(key & 0xff) as usize];
            *c = c.saturating_sub(1);
        } else if key & PAIR_TAG != 0 {
            let c = &mut self.pair_counts[(key & 0xffff) as usize];
            *c = c.saturating_sub(1);
        } else if let Some(list) = self.lists.get_mut(&key) {
            list.remove(id, self.block_len);
            if list.len == 0 {
                self.lists.remove(&key);
            }
        }
    }

    /// Whether `id` is allocated.
    pub(crate) fn is_allocated(&self, id: PubId) -> bool {
        self.allocated
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Finds the publications whose name contains `pattern` (bytes, case-sensitive;
    /// the empty pattern matches every name), in ascending id order, and passes each
    /// to `emit`, at most `cap` of them; returns how many were emitted.
    ///
    /// `name_of(id)` is asked for candidates only (allocated ids): it answers the name
    /// the publication was inserted with, or `None` to leave it out (its owner is not
    /// connected). Never panics; the work is bounded by the candidates, see the module
    /// documentation.
    #[cfg(test)]
    pub(crate) fn search<'n>(
        &self,
        pattern: &str,
        cap: usize,
        name_of: impl FnMut(PubId) -> Option<&'n str>,
        emit: impl FnMut(PubId),
    ) -> usize {
        let step = Step {
            from: 0,
            cap,
            candidates: usize::MAX,
        };
        self.search_step(pattern, step, name_of, emit).found
    }

    /// [`SearchIndex::search`] over the ids from `step.from` on, offering at most
    /// `step.candidates` of them to `name_of`: a search done in steps, between which
    /// the caller may let writers change the index (the ids already passed are not
    /// looked at again; results stay in ascending id order). [`Progress::resume`]
    /// says where the next step starts when the step stopped at its cap or its
    /// candidates, `None` once nothing is left to look at.
    pub(crate) fn search_step<'n>(
        &self,
        pattern: &str,
        step: Step,
        mut name_of: impl FnMut(PubId) -> Option<&'n str>,
        mut emit: impl FnMut(PubId),
    ) -> Progress {
        let mut progress = Progress::default();
        if step.cap == 0 || step.candidates == 0 {
            progress.resume = (step.cap > 0).then_some(step.from);
            return progress;
        }
        let mut check = |id: PubId| -> bool {
            if name_of(id).is_some_and(|name| name.contains(pattern)) {
                emit(id);
                progress.found += 1;
            }
            progress.checked += 1;
            if progress.found == step.cap || progress.checked == step.candidates {
                progress.resume = id.checked_add(1);
                return true;
            }
            false
        };
        let p = pattern.as_bytes();
        let from = step.from;
        match p.len() {
            0 => self.scan(from, &mut check),
            1 | 2 => {
                let count = match p {
                    [b] => self.byte_counts[*b as usize],
                    [a, b] => self.pair_counts[pair(*a, *b) as usize],
                    _ => 0,
                };
                if count > 0 {
                    // A scan in id order meets a match about every `end / count`
                    // ids, so reaches the cap after about `cap * end / count`;
                    // collecting the candidates costs a few times `count`.
                    let count = u64::from(count);
                    let cap = step.cap as u64;
                    if 4 * count * count >= cap.saturating_mul(u64::from(self.end)) {
                        self.scan(from, &mut check);
                    } else {
                        self.union(p, from, &mut check);
                    }
                }
            }
            _ => self.intersect(p, from, &mut check),
        }
        progress
    }

    /// Offers every allocated id from `from` on to `check`, ascending, until it
    /// answers true.
    fn scan(&self, from: PubId, check: &mut impl FnMut(PubId) -> bool) {
        let first = from as usize / 64;
        for (w, &word) in self.allocated.iter().enumerate().skip(first) {
            let mut bits = if w == first {
                word & (u64::MAX << (from % 64))
            } else {
                word
            };
            while bits != 0 {
                let id = w as u32 * 64 + bits.trailing_zeros();
                bits &= bits - 1;
                if check(id) {
                    return;
                }
            }
        }
    }

    /// Offers the ids from `from` on of the names that may contain the 1- or 2-byte
    /// `p` (every trigram list containing `p`, and the short names), ascending.
    fn union(&self, p: &[u8], from: PubId, check: &mut impl FnMut(PubId) -> bool) {
        let mut ids = Vec::new();
        let mut add = |list: Option<&PostingList>| {
            if let Some(list) = list {
                for b in &list.blocks {
                    b.decode_into(&mut ids);
                }
            }
        };
        add(self.lists.get(&SHORT));
        match *p {
            [a, b] => {
                for x in 0..=255u8 {
                    add(self.lists.get(&trigram(a, b, x)));
                    add(self.lists.get(&trigram(x, a, b)));
                }
            }
            [a] => {
                for (&key, list) in &self.lists {
                    let [_, k0, k1, k2] = key.to_be_bytes();
                    if key != SHORT && (k0 == a || k1 == a || k2 == a) {
                        add(Some(list));
                    }
                }
            }
            _ => return,
        }
        ids.sort_unstable();
        ids.dedup();
        let start = ids.partition_point(|&id| id < from);
        for &id in &ids[start..] {
            if check(id) {
                return;
            }
        }
    }

    /// Offers the ids from `from` on in every list of the [`MAX_LISTS`] rarest
    /// trigrams of `p` (3 bytes or more), ascending.
    fn intersect(&self, p: &[u8], from: PubId, check: &mut impl FnMut(PubId) -> bool) {
        let mut lists = Vec::new();
        for w in p.windows(3) {
            match self.lists.get(&trigram(w[0], w[1], w[2])) {
                Some(list) => lists.push(list),
                None => return,
            }
        }
        lists.sort_by_key(|l| l.len);
        lists.dedup_by(|a, b| std::ptr::eq(*a, *b));
        lists.truncate(MAX_LISTS);
        let mut cursors: Vec<Cursor> = lists.into_iter().map(Cursor::new).collect();
        let mut target = from;
        'next: loop {
            let Some(id) = cursors[0].seek(target) else {
                return;
            };
            for c in &mut cursors[1..] {
                match c.seek(id) {
                    None => return,
                    Some(other) if other != id => {
                        target = other;
                        continue 'next;
                    }
                    Some(_) => {}
                }
            }
            if check(id) {
                return;
            }
            match id.checked_add(1) {
                Some(t) => target = t,
                None => return,
            }
        }
    }

    /// Estimated heap bytes held by the index (from capacities, allocator overhead
    /// not counted).
    pub(crate) fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown: one control byte per bucket, buckets >= capacity * 8 / 7.
        let buckets = (self.lists.capacity() * 8).div_ceil(7).next_power_of_two();
        let table = buckets * (size_of::<(u32, PostingList)>() + 1);
        let lists: usize = self.lists.values().map(PostingList::memory_bytes).sum();
        table
            + lists
            + self.pair_counts.len() * 4
            + self.byte_counts.len() * 4
            + self.allocated.capacity() * 8
            + self.free.capacity() * 4
            + self.scratch.capacity() * 4
    }
}

/// The distinct grams of `name` into `keys`: trigram keys (or [`SHORT`] for a name
/// shorter than 3 bytes), and the tagged pairs and bytes.
fn grams(name: &[u8], keys: &mut Vec<u32>) {
    keys.clear();
    keys.extend(name.windows(3).map(|w| trigram(w[0], w[1], w[2])));
    if name.len() < 3 {
        keys.push(SHORT);
    }
    keys.extend(name.windows(2).map(|w| PAIR_TAG | pair(w[0], w[1])));
    keys.extend(name.iter().map(|&b| BYTE_TAG | u32::from(b)));
    keys.sort_unstable();
    keys.dedup();
}

fn trigram(a: u8, b: u8, c: u8) -> u32 {
    u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c)
}

fn pair(a: u8, b: u8) -> u32 {
    u32::from(a) << 8 | u32::from(b)
}

/// Hash of a `u32` key: one multiply, high bits folded down (hashbrown takes the
/// bucket from the low bits, the tag from the top 7).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        let h = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes `v` into `buf`, returning the bytes used.
fn varint_bytes(mut v: u32, buf: &mut [u8; 5]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    n + 1
}

/// Reads the varint at `*pos` (written by this module, so well formed and in
/// bounds) and moves past it.
fn get_varint(data: &[u8], pos: &mut usize) -> u32 {
    let mut v = 0u32;
    let mut shift = 0;
    while let Some(&b) = data.get(*pos) {
        *pos += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

/// Replaces `data[range]` with the varints of `values`.
fn splice_varints(data: &mut Vec<u8>, range: std::ops::Range<usize>, values: &[u32]) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    for &v in values {
        let mut buf = [0u8; 5];
        let k = varint_bytes(v, &mut buf);
        bytes[n..n + k].copy_from_slice(&buf[..k]);
        n += k;
    }
    data.splice(range, bytes[..n].iter().copied());
}

/// The ascending ids of the names containing one trigram.
#[derive(Debug, Default)]
struct PostingList {
    len: u32,
    blocks: Vec<Block>,
    /// The last id of each block: the binary searches run over these 4 bytes a
    /// block rather than over the 40-byte blocks (in a list of 500,000 ids that is
    /// the difference between a dozen cache misses and two or three).
    lasts: Vec<u32>,
}

impl PostingList {
    /// The block that holds `id` if any block does: the first whose last is >= `id`.
    fn block_of(&self, id: PubId) -> usize {
        self.lasts.partition_point(|&last| last < id)
    }

    fn insert(&mut self, id: PubId, block_len: usize) {
        let n = self.blocks.len();
        if n == 0 || id > self.lasts[n - 1] {
            if n > 0 && (self.blocks[n - 1].len as usize) < block_len {
                self.blocks[n - 1].push(id);
                self.lasts[n - 1] = id;
            } else {
                self.blocks.push(Block::single(id));
                self.lasts.push(id);
            }
            self.len += 1;
            return;
        }
        let mut i = self.block_of(id);
        if id < self.blocks[i].first && i > 0 && (self.blocks[i - 1].len as usize) < block_len {
            // Between two blocks: the end of the previous one is cheaper.
            self.blocks[i - 1].push(id);
            self.lasts[i - 1] = id;
            self.len += 1;
            return;
        }
        if self.blocks[i].len as usize >= block_len {
            let mut ids = Vec::with_capacity(block_len);
            self.blocks[i].decode_into(&mut ids);
            let (low, high) = ids.split_at(ids.len() / 2);
            self.blocks[i] = Block::from_sorted(low);
            self.blocks.insert(i + 1, Block::from_sorted(high));
            self.lasts[i] = self.blocks[i].last;
            self.lasts.insert(i + 1, self.blocks[i + 1].last);
            if id > self.lasts[i] {
                i += 1;
            }
        }
        if self.blocks[i].insert(id) {
            self.lasts[i] = self.blocks[i].last;
            self.len += 1;
        }
    }

    fn remove(&mut self, id: PubId, block_len: usize) -> bool {
        let i = self.block_of(id);
        if i == self.blocks.len() || !self.blocks[i].remove(id) {
            return false;
        }
        self.len -= 1;
        self.lasts[i] = self.blocks[i].last;
        if self.blocks[i].len == 0 {
            self.blocks.remove(i);
            self.lasts.remove(i);
        } else if (self.blocks[i].len as usize) < block_len / 4 {
            let fits = |a: &Block, b: &Block| (a.len + b.len) as usize <= block_len * 3 / 4;
            let merge = if i + 1 < self.blocks.len() && fits(&self.blocks[i], &self.blocks[i + 1]) {
                Some(i)
            } else if i > 0 && fits(&self.blocks[i - 1], &self.blocks[i]) {
                Some(i - 1)
            } else {
                None
            };
            if let Some(j) = merge {
                let next = self.blocks.remove(j + 1);
                self.lasts.remove(j + 1);
                self.blocks[j].append(next);
                self.lasts[j] = self.blocks[j].last;
            }
        }
        true
    }

    /// Removes the ascending `ids` (those present), rewriting each block they touch
    /// once and compacting the block vector once; returns how many were removed.
    fn remove_sorted(&mut self, ids: &[PubId], block_len: usize) -> usize {
        let mut removed = 0;
        let mut compact = false;
        let mut kept = Vec::with_capacity(block_len);
        let mut i = 0;
        while i < ids.len() {
            // An emptied block keeps its old last here until the compaction: every
            // id still to remove is above it, so the search stays right.
            let k = self.block_of(ids[i]);
            let Some(block) = self.blocks.get_mut(k) else {
                break;
            };
            let end = i + ids[i..].partition_point(|&id| id <= block.last);
            let gone = &ids[i..end];
            i = end;
            if let [id] = *gone {
                // One id in this block (the common case in a long list): in place.
                if block.remove(id) {
                    removed += 1;
                    self.lasts[k] = block.last;
                    compact |= (block.len as usize) < block_len / 4 || block.len == 0;
                }
                continue;
            }
            kept.clear();
            block.decode_into(&mut kept);
            let before = kept.len();
            kept.retain(|id| gone.binary_search(id).is_err());
            if kept.len() == before {
                continue;
            }
            removed += before - kept.len();
            if kept.is_empty() {
                block.len = 0;
                block.data = Vec::new();
            } else {
                *block = Block::from_sorted(&kept);
                self.lasts[k] = block.last;
            }
            compact |= kept.is_empty() || kept.len() < block_len / 4;
        }
        self.len -= removed as u32;
        if compact {
            self.compact(block_len);
        }
        removed
    }

    /// Drops the empty blocks and merges small neighbours (below a quarter, together
    /// at most three quarters of `block_len`), in one pass over the block vector.
    fn compact(&mut self, block_len: usize) {
        let mut blocks: Vec<Block> = Vec::with_capacity(self.blocks.len());
        for b in std::mem::take(&mut self.blocks) {
            if b.len == 0 {
                continue;
            }
            if let Some(prev) = blocks.last_mut() {
                let small = (prev.len.min(b.len) as usize) < block_len / 4;
                if small && (prev.len + b.len) as usize <= block_len * 3 / 4 {
                    prev.append(b);
                    continue;
                }
            }
            blocks.push(b);
        }
        self.lasts = blocks.iter().map(|b| b.last).collect();
        self.blocks = blocks;
    }

    fn memory_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Block>()
            + self.lasts.capacity() * 4
            + self.blocks.iter().map(|b| b.data.capacity()).sum::<usize>()
    }
}

/// Up to `block_len` ascending ids: the first and last, and the varint gaps after the
/// first.
#[derive(Debug)]
struct Block {
    first: u32,
    last: u32,
    len: u32,
    data: Vec<u8>,
}

impl Block {
    fn single(id: PubId) -> Block {
        Block {
            first: id,
            last: id,
            len: 1,
            data: Vec::new(),
        }
    }

    /// A block of `ids` (ascending, not empty).
    fn from_sorted(ids: &[u32]) -> Block {
        let mut b = Block::single(ids[0]);
        b.data.reserve_exact(ids.len() - 1);
        for &id in &ids[1..] {
            b.push(id);
        }
        b
    }

    /// Appends `id`, above the last.
    fn push(&mut self, id: PubId) {
        put_varint(&mut self.data, id - self.last);
        self.last = id;
        self.len += 1;
    }

    /// Appends the ids of `next`, all above the last.
    fn append(&mut self, next: Block) {
        put_varint(&mut self.data, next.first - self.last);
        self.data.extend_from_slice(&next.data);
        self.last = next.last;
        self.len += next.len;
    }

    fn decode_into(&self, out: &mut Vec<u32>) {
        out.push(self.first);
        let mut id = self.first;
        let mut pos = 0;
        while pos < self.data.len() {
            id += get_varint(&self.data, &mut pos);
            out.push(id);
        }
    }

    /// Inserts `id` (the caller makes room: `len < block_len`); false if present.
    fn insert(&mut self, id: PubId) -> bool {
        if id == self.first || id == self.last {
            return false;
        }
        if id > self.last {
            self.push(id);
            return true;
        }
        if id < self.first {
            splice_varints(&mut self.data, 0..0, &[self.first - id]);
            self.first = id;
            self.len += 1;
            return true;
        }
        let (mut prev, mut pos) = (self.first, 0);
        while pos < self.data.len() {
            let start = pos;
            let cur = prev + get_varint(&self.data, &mut pos);
            if cur == id {
                return false;
            }
            if cur > id {
                splice_varints(&mut self.data, start..pos, &[id - prev, cur - id]);
                self.len += 1;
                return true;
            }
            prev = cur;
        }
        false
    }

    /// Removes `id`; false if absent. A block left empty has `len == 0`.
    fn remove(&mut self, id: PubId) -> bool {
        if id < self.first || id > self.last {
            return false;
        }
        if id == self.first {
            if self.len == 1 {
                self.len = 0;
                self.data.clear();
                return true;
            }
            let mut pos = 0;
            self.first += get_varint(&self.data, &mut pos);
            self.data.drain(..pos);
            self.len -= 1;
            return true;
        }
        let (mut prev, mut pos) = (self.first, 0);
        while pos < self.data.len() {
            let start = pos;
            let gap = get_varint(&self.data, &mut pos);
            let cur = prev + gap;
            if cur == id {
                if pos == self.data.len() {
                    self.data.truncate(start);
                    self.last = prev;
                } else {
                    let mut end = pos;
                    let next_gap = get_varint(&self.data, &mut end);
                    splice_varints(&mut self.data, start..end, &[gap + next_gap]);
                }
                self.len -= 1;
                return true;
            }
            if cur > id {
                return false;
            }
            prev = cur;
        }
        false
    }
}

/// A forward cursor over a posting list, for nondecreasing seek targets.
struct Cursor<'a> {
    blocks: &'a [Block],
    lasts: &'a [u32],
    /// The decoded block, `usize::MAX` before the first seek.
    block: usize,
    ids: Vec<u32>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(list: &'a PostingList) -> Self {
        Cursor {
            blocks: &list.blocks,
            lasts: &list.lasts,
            block: usize::MAX,
            ids: Vec::with_capacity(BLOCK_LEN),
            pos: 0,
        }
    }

    /// The first id >= `target` (not below an earlier target), if any.
    fn seek(&mut self, target: u32) -> Option<u32> {
        let loaded = self.block != usize::MAX;
        if !loaded || self.lasts[self.block] < target {
            let from = if loaded { self.block + 1 } else { 0 };
            let rest = self.lasts.get(from..)?;
            let i = from + rest.partition_point(|&last| last < target);
            let b = self.blocks.get(i)?;
            self.block = i;
            self.ids.clear();
            b.decode_into(&mut self.ids);
            self.pos = 0;
        }
        while self.ids.get(self.pos).is_some_and(|&id| id < target) {
            self.pos += 1;
        }
        self.ids.get(self.pos).copied()
    }
}

#[cfg(test)]
// The path also holds where `benches/search_index.rs` compiles this file.
#[path = "trigram/tests.rs"]
mod tests;
