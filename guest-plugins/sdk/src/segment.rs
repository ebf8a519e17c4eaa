//! The per-segment view over a batch's columns.
//!
//! The host sends a batch as columns (one list per field) plus label columns of symbol ids; [`Segment`] is an index
//! into them. Everything a plugin reads per segment is O(1) and allocation-free: a label key is resolved to its
//! column once per batch and cached, label values are symbol ids resolved through the pass's symbol table, and names
//! are fetched from the host once per batch, on first use.
//!
//! The label path is the SDK's hottest code (a typical policy reads a few labels of every segment), so its data is
//! laid out for the fewest dependent loads and branches: a cached column is a plain slice, empty when the batch lacks
//! the key, so one bounds check covers "absent key" and "segment index"; the symbol table is indexed by the id
//! itself, with id 0 stored as `None`, so resolving a value is one bounds check and one load of the text.

use std::cell::{Cell, OnceCell, RefCell};
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use crate::bindings::retention::policy::types::LabelColumn;
use crate::context::ms_to_system_time;
use crate::time::DAY_MS;
use crate::types::Tier;

/// Keys and values up to this many bytes are cached by value; longer ones are looked up on every call.
const KEY_INLINE: usize = 16;

/// The caches are direct-mapped by the text's length and the low bits of its first byte (a bucket only ever holds
/// texts of one length, so a lookup compares the bytes and never the length; for a literal the bucket is a
/// constant), two ways per bucket.
const KEY_LENGTHS: usize = KEY_INLINE + 1;
const KEY_FIRST_BYTES: usize = 4;
const KEY_WAYS: usize = 2;
const KEY_SLOTS: usize = KEY_LENGTHS * KEY_FIRST_BYTES * KEY_WAYS;

/// The first slot of the bucket of a text of `len` bytes whose first word is `w0`.
#[inline(always)]
fn bucket(len: usize, w0: u64) -> usize {
    (len * KEY_FIRST_BYTES + (w0 as usize & (KEY_FIRST_BYTES - 1))) * KEY_WAYS
}

/// The first word of an empty slot: eight 0xff bytes, which no UTF-8 text contains, so it never matches.
const EMPTY_WORD: u64 = u64::MAX;

/// A label key resolved in the current batch, identified by its text (bytes, zero-padded; the bucket gives the
/// length), not by its address: a plugin may reuse one buffer for different keys. Scalar cells, so that a lookup is
/// a few plain loads; for a literal key the comparison compiles to integer compares against constants.
struct KeySlot {
    w0: Cell<u64>,
    w1: Cell<u64>,
    /// The key's column in the current batch, as the parts of a slice (see [`LabelCache`] for why it is valid; an
    /// absent column is an empty slice, whose pointer is dangling but valid for no elements); empty when no segment
    /// of the batch has that label (a present column has one entry per segment, so indexing
    /// it checks for both at once).
    ptr: Cell<*const u32>,
    len: Cell<usize>,
}

/// A label value resolved to its symbol id in the current batch, identified by its text like [`KeySlot`].
struct ValueSlot {
    w0: Cell<u64>,
    w1: Cell<u64>,
    /// The value's symbol id; `u32::MAX`, which no label column holds, when the value is no symbol.
    id: Cell<u32>,
}

/// The label caches of the batch whose [`Batch::for_each`] is running.
///
/// They live in a thread-local rather than in the [`Batch`]: in a plugin (one thread, no atomics) a thread-local is
/// a plain static, so every cache access is a load from a constant address. Kept in the batch, which lives on the
/// shadow stack, each access first reloads the frame's address, and the plugin's per-segment loop (SDK and policy
/// inlined into one function) spills it between label reads.
///
/// Validity: the caches are emptied when a batch's `for_each` starts and only filled from that batch's columns, and
/// a cached column is only read through a [`Segment`] of that batch, which cannot outlive the `for_each` call. The
/// SDK never runs two `for_each` calls at once (`active` checks it).
struct LabelCache {
    keys: [KeySlot; KEY_SLOTS],
    values: [ValueSlot; KEY_SLOTS],
    /// Set by [`Batch::fail`]; the `for_each` loop stops once it is set.
    failed: Cell<bool>,
    /// Number of entries of the pass's symbol table (the largest valid id plus one), for checking label values.
    symbols: Cell<usize>,
    active: Cell<bool>,
}

impl LabelCache {
    const fn new() -> LabelCache {
        LabelCache {
            keys: [const {
                KeySlot {
                    w0: Cell::new(EMPTY_WORD),
                    w1: Cell::new(EMPTY_WORD),
                    ptr: Cell::new(std::ptr::null()),
                    len: Cell::new(0),
                }
            }; KEY_SLOTS],
            values: [const {
                ValueSlot {
                    w0: Cell::new(EMPTY_WORD),
                    w1: Cell::new(EMPTY_WORD),
                    id: Cell::new(u32::MAX),
                }
            }; KEY_SLOTS],
            failed: Cell::new(false),
            symbols: Cell::new(0),
            active: Cell::new(false),
        }
    }

    /// Empties every slot (a slot whose first word is [`EMPTY_WORD`] matches no text).
    fn clear(&self) {
        for k in &self.keys {
            k.w0.set(EMPTY_WORD);
        }
        for v in &self.values {
            v.w0.set(EMPTY_WORD);
        }
    }
}

thread_local! {
    static CACHE: LabelCache = const { LabelCache::new() };
}

/// Runs `f` with the label caches.
#[inline(always)]
fn with_cache<R>(f: impl FnOnce(&LabelCache) -> R) -> R {
    CACHE.with(f)
}

/// Empties the caches for a new `for_each` and marks them in use until dropped.
struct ActiveBatch;

impl ActiveBatch {
    fn start(failed: bool, symbols: usize) -> ActiveBatch {
        with_cache(|c| {
            assert!(!c.active.get(), "nested Batch::for_each");
            c.clear();
            c.failed.set(failed);
            c.symbols.set(symbols);
            c.active.set(true);
        });
        ActiveBatch
    }
}

impl Drop for ActiveBatch {
    fn drop(&mut self) {
        with_cache(|c| {
            c.active.set(false);
            c.clear();
        });
    }
}

/// Whether every byte is a tier code (0, 1 or 2), eight bytes at a time: compiled to WebAssembly, a loop per byte
/// costs over ten instructions per segment, this under one.
fn tier_codes_valid(tiers: &[u8]) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte `b`: `(b & 0x7f) + 0x7d` reaches 0x80 exactly when `b & 0x7f` > 2, without carrying into the next
    // byte; or-ing in `b` catches bytes with the high bit set.
    const ADD: u64 = 0x7d7d_7d7d_7d7d_7d7d;
    let mut chunks = tiers.chunks_exact(8);
    let mut bad = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        bad |= ((w & LOW7) + ADD) | w;
    }
    bad & HIGH == 0 && chunks.remainder().iter().all(|&t| t <= 2)
}

/// A short text's bytes, zero-padded into two words; `None` for texts longer than [`KEY_INLINE`].
#[inline(always)]
fn key_words(key: &str) -> Option<(u64, u64)> {
    let b = key.as_bytes();
    if b.len() > KEY_INLINE {
        return None;
    }
    let mut buf = [0u8; KEY_INLINE];
    buf[..b.len()].copy_from_slice(b);
    let (lo, hi) = buf.split_at(8);
    Some((
        u64::from_le_bytes(lo.try_into().expect("8 bytes")),
        u64::from_le_bytes(hi.try_into().expect("8 bytes")),
    ))
}

/// Whether a cache slot holds the text of `len` bytes whose words are `w0`, `w1` (the slot's bucket is `len`'s).
/// Texts of up to 8 bytes have `w1 == 0` on both sides: for a literal that test folds away.
#[inline(always)]
fn slot_holds(len: usize, (w0, w1): (u64, u64), slot_w0: &Cell<u64>, slot_w1: &Cell<u64>) -> bool {
    slot_w0.get() == w0 && (len <= 8 || slot_w1.get() == w1)
}

/// A string of the pass's symbol table (label keys and values). Ids are stable for the whole pass, across batches
/// and across `observe` and `decide`, so a plugin can key its own maps by symbol instead of by string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(NonZeroU32);

impl Symbol {
    /// The id the host assigned (1 for the first symbol of the pass).
    pub fn id(self) -> u32 {
        self.0.get()
    }
}

/// The pass's symbol table, indexed by symbol id: entry 0 is `None` (the contract's "absent"), entry `n` the text of
/// symbol `n`. Indexing by the id itself, with absence as the box's `None` niche, makes resolving a label value one
/// bounds check and one load (no `id - 1`, no separate test for 0).
pub(crate) struct SymbolTable(Vec<Option<Box<str>>>, SymbolIndex);

/// Text to id, for [`Segment::label_is`]: built on its first use (plugins that never call it never pay for it) and
/// brought up to date with the symbols appended since, on every lookup that misses.
#[derive(Default)]
struct SymbolIndex {
    ids: RefCell<std::collections::HashMap<Box<str>, u32>>,
    /// Symbols with ids below this one are in `ids`.
    indexed: Cell<usize>,
}

impl SymbolTable {
    pub(crate) fn new() -> SymbolTable {
        SymbolTable(vec![None], SymbolIndex::default())
    }

    /// The id of `text`, 0 when it is no symbol (yet).
    fn id_of(&self, text: &str) -> u32 {
        let mut ids = self.1.ids.borrow_mut();
        for id in self.1.indexed.get().max(1)..self.0.len() {
            if let Some(t) = &self.0[id] {
                ids.insert(t.clone(), id as u32);
            }
        }
        self.1.indexed.set(self.0.len());
        ids.get(text).copied().unwrap_or(0)
    }

    /// Appends a batch's new symbols, taking their strings (lifted strings have no spare capacity, so boxing them
    /// does not reallocate).
    pub(crate) fn append(&mut self, symbols: &mut Vec<String>) {
        self.0.extend(symbols.drain(..).map(|s| Some(s.into_boxed_str())));
    }

    /// Number of symbols (the largest valid id).
    fn len(&self) -> usize {
        self.0.len() - 1
    }
}

/// The names of a batch as the host returned them.
struct Names {
    text: String,
    ends: Vec<u32>,
}

/// One batch, as columns checked to be consistent; [`Segment`]s index into it.
pub(crate) struct Batch<'a> {
    first_index: u64,
    len: usize,
    start_ms: &'a [i64],
    end_ms: &'a [i64],
    rows: &'a [i64],
    bytes: &'a [u64],
    tiers: &'a [u8],
    columns: &'a [LabelColumn],
    /// The pass's symbol table (see [`SymbolTable`]): `symbols[id]`.
    symbols: &'a [Option<Box<str>>],
    table: &'a SymbolTable,
    now_ms: i64,
    total: u64,
    names: OnceCell<Names>,
    failure: RefCell<Option<String>>,
}

/// The columns of a batch, borrowed from the lifted `segment-batch`.
pub(crate) struct Columns<'a> {
    pub first_index: u64,
    pub start_ms: &'a [i64],
    pub end_ms: &'a [i64],
    pub rows: &'a [i64],
    pub bytes: &'a [u64],
    pub tiers: &'a [u8],
    pub labels: &'a [LabelColumn],
}

impl<'a> Batch<'a> {
    /// Checks that the columns describe the same segments and that every label key is a known symbol, so that the
    /// accessors below can neither panic nor read garbage. A malformed batch is a host bug: it fails the call with a
    /// message.
    pub(crate) fn new(c: Columns<'a>, table: &'a SymbolTable, now_ms: i64, total: u64) -> Result<Batch<'a>, String> {
        let symbols = &table.0[..];
        let len = c.end_ms.len();
        let lens = [
            ("start-ms", c.start_ms.len()),
            ("rows", c.rows.len()),
            ("bytes", c.bytes.len()),
            ("tiers", c.tiers.len()),
        ];
        for (field, n) in lens {
            if n != len {
                return Err(format!(
                    "malformed batch at index {}: `{field}` has {n} entries but `end-ms` has {len}",
                    c.first_index
                ));
            }
        }
        let known = table.len() as u64;
        for col in c.labels {
            if col.key == 0 || u64::from(col.key) > known {
                return Err(format!(
                    "malformed batch at index {}: label key symbol {} is not in the symbol table ({known} symbols)",
                    c.first_index, col.key
                ));
            }
            if col.values.len() != len {
                return Err(format!(
                    "malformed batch at index {}: label column `{}` has {} entries for {len} segments",
                    c.first_index,
                    symbols[col.key as usize].as_deref().unwrap_or_default(),
                    col.values.len()
                ));
            }
            // Value ids are checked when read (see `symbol_text`), not here: a scan of every column would cost more
            // than the lookups of a plugin that reads one label.
        }
        // Tier codes are checked once here (a tight loop over bytes), so that reading a tier per segment is a plain
        // conversion.
        if !tier_codes_valid(c.tiers)
            && let Some(i) = c.tiers.iter().position(|&t| Tier::from_code(t).is_none())
        {
            return Err(format!(
                "malformed batch at index {}: tier code {} of segment {} is not a tier",
                c.first_index,
                c.tiers[i],
                c.first_index + i as u64
            ));
        }
        Ok(Batch {
            first_index: c.first_index,
            len,
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            rows: c.rows,
            bytes: c.bytes,
            tiers: c.tiers,
            columns: c.labels,
            symbols,
            table,
            now_ms,
            total,
            names: OnceCell::new(),
            failure: RefCell::new(None),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Calls `f` with every segment of the batch in order, until `f` returns false or a failure was recorded.
    #[inline(always)]
    pub(crate) fn for_each(&'a self, mut f: impl FnMut(usize, &Segment<'a>) -> bool) {
        let _active = ActiveBatch::start(self.failure.borrow().is_some(), self.symbols.len());
        let columns = self
            .start_ms
            .iter()
            .zip(self.end_ms)
            .zip(self.rows)
            .zip(self.bytes)
            .zip(self.tiers);
        // Read once: inside the loop they would be reloaded from the batch (through the frame's address) on every
        // segment, since the plugin's calls may touch the batch's cells.
        let (symbols, now_ms) = (self.symbols, self.now_ms);
        for (i, ((((&start_ms, &end_ms), &rows), &bytes), &code)) in columns.enumerate() {
            let seg = Segment {
                b: self,
                symbols,
                now_ms,
                i,
                start_ms,
                end_ms,
                rows,
                bytes,
                tier: code,
            };
            if !f(i, &seg) || with_cache(|c| c.failed.get()) {
                break;
            }
        }
    }

    /// The name of segment `i` if names were fetched for this batch, for error messages.
    fn fetched_name(&self, i: usize) -> Option<&str> {
        let n = self.names.get()?;
        let start = if i == 0 { 0 } else { *n.ends.get(i - 1)? as usize };
        n.text.get(start..*n.ends.get(i)? as usize)
    }

    pub(crate) fn take_failure(&self) -> Option<String> {
        self.failure.borrow_mut().take()
    }

    fn fail(&self, message: String) {
        let mut f = self.failure.borrow_mut();
        if f.is_none() {
            *f = Some(message);
        }
        with_cache(|c| c.failed.set(true));
    }

    /// The column of label `key` in this batch, empty when no segment of the batch has that label.
    #[inline(always)]
    fn column(&self, key: &str) -> &'a [u32] {
        if let Some(words) = key_words(key) {
            let b = bucket(key.len(), words.0);
            let hit = with_cache(|c| {
                for slot in &c.keys[b..b + KEY_WAYS] {
                    if slot_holds(key.len(), words, &slot.w0, &slot.w1) {
                        return Some((slot.ptr.get(), slot.len.get()));
                    }
                }
                None
            });
            if let Some((ptr, len)) = hit {
                // SAFETY: a matching slot was filled by `column_slow` from a column (or an empty slice) of this batch
                // during this `for_each` (see `LabelCache`), and the batch borrows its columns for 'a.
                return unsafe { std::slice::from_raw_parts(ptr, len) };
            }
        }
        self.column_slow(key)
    }

    /// Finds `key` among the batch's columns by text and caches the answer (present or absent) for short keys.
    #[cold]
    #[inline(never)]
    fn column_slow(&self, key: &str) -> &'a [u32] {
        let values = self
            .columns
            .iter()
            .find(|c| self.symbols[c.key as usize].as_deref() == Some(key))
            .map_or(&[][..], |c| c.values.as_slice());
        if let Some((w0, w1)) = key_words(key) {
            // The newer key takes way 0 and the older one moves to way 1: least recently added goes first.
            with_cache(|c| {
                let b = bucket(key.len(), w0);
                let (first, second) = (&c.keys[b], &c.keys[b + 1]);
                second.w0.set(first.w0.get());
                second.w1.set(first.w1.get());
                second.ptr.set(first.ptr.get());
                second.len.set(first.len.get());
                first.w0.set(w0);
                first.w1.set(w1);
                first.ptr.set(values.as_ptr());
                first.len.set(values.len());
            });
        }
        values
    }

    /// The symbol id of label value `value` in this pass, `u32::MAX` (which no column holds) when it is no symbol.
    /// Cached per batch like label keys (symbols only ever get added, so a value that is no symbol in one batch may
    /// be one in the next).
    #[inline(always)]
    fn value_id(&self, value: &str) -> u32 {
        if let Some(words) = key_words(value) {
            let b = bucket(value.len(), words.0);
            let hit = with_cache(|c| {
                for slot in &c.values[b..b + KEY_WAYS] {
                    if slot_holds(value.len(), words, &slot.w0, &slot.w1) {
                        return Some(slot.id.get());
                    }
                }
                None
            });
            if let Some(id) = hit {
                return id;
            }
        }
        self.value_id_slow(value)
    }

    #[cold]
    #[inline(never)]
    fn value_id_slow(&self, value: &str) -> u32 {
        let id = match self.table.id_of(value) {
            0 => u32::MAX,
            id => id,
        };
        if let Some((w0, w1)) = key_words(value) {
            with_cache(|c| {
                let b = bucket(value.len(), w0);
                let (first, second) = (&c.values[b], &c.values[b + 1]);
                second.w0.set(first.w0.get());
                second.w1.set(first.w1.get());
                second.id.set(first.id.get());
                first.w0.set(w0);
                first.w1.set(w1);
                first.id.set(id);
            });
        }
        id
    }

    /// The text of a symbol id from a label column, `None` for 0 (absent); an id past the table is a host bug,
    /// reported as the call's error (the label reads as absent meanwhile).
    #[inline(always)]
    fn symbol_text(&self, id: u32) -> Option<&'a str> {
        match self.symbols.get(id as usize) {
            Some(s) => s.as_deref(),
            None => {
                self.unknown_symbol(id);
                None
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn unknown_symbol(&self, id: u32) {
        self.fail(format!(
            "malformed batch at index {}: a label refers to symbol {id}, not in the symbol table ({} symbols)",
            self.first_index,
            self.symbols.len() - 1
        ));
    }

    /// The batch's names, fetched on first use. The fetch and its error paths are out of line: inlined into a
    /// plugin's per-segment loop, their message arguments stay live across the loop and crowd the registers.
    #[inline(always)]
    fn names(&self) -> &Names {
        match self.names.get() {
            Some(n) => n,
            None => self.fetch_names(),
        }
    }

    #[cold]
    #[inline(never)]
    fn fetch_names(&self) -> &Names {
        self.names.get_or_init(|| {
            let n = crate::imports::batch_names();
            if n.ends.len() != self.len {
                self.fail(format!(
                    "host returned {} segment names for a batch of {} segments (index {})",
                    n.ends.len(),
                    self.len,
                    self.first_index
                ));
            }
            Names {
                text: n.text,
                ends: n.ends,
            }
        })
    }

    #[cold]
    #[inline(never)]
    fn malformed_name(&self, i: usize, start: usize, end: usize) {
        let len = self.names.get().map_or(0, |n| n.text.len());
        self.fail(format!(
            "host returned a malformed name for segment {} (bytes {start}..{end} of {len})",
            self.first_index + i as u64,
        ));
    }

    #[inline]
    fn name(&self, i: usize) -> &str {
        let n = self.names();
        let start = if i == 0 {
            Some(0)
        } else {
            n.ends.get(i - 1).map(|&e| e as usize)
        };
        let end = n.ends.get(i).map(|&e| e as usize);
        match (start, end) {
            (Some(s), Some(e)) => match n.text.get(s..e) {
                Some(name) => name,
                None => {
                    self.malformed_name(i, s, e);
                    ""
                }
            },
            // The length mismatch was already reported when the names were fetched.
            _ => "",
        }
    }
}

/// One segment of the pass: a file, a time chunk of a table, an archived object.
///
/// A view into the current batch: cheap to read (no allocation, O(1) per call), valid only during the `observe` or
/// `decide` call that received it.
pub struct Segment<'a> {
    b: &'a Batch<'a>,
    /// The pass's symbol table, copied like the columns below: resolving a label value is then a load from a
    /// register-held slice rather than through the batch.
    symbols: &'a [Option<Box<str>>],
    /// The pass's now, copied likewise.
    now_ms: i64,
    i: usize,
    // Copied from the columns when the view is made (a few loads the optimiser drops when unused), so that reading
    // them does not reload the columns from the batch after every call that may touch its caches.
    start_ms: i64,
    end_ms: i64,
    rows: i64,
    bytes: u64,
    /// The tier's code (0, 1 or 2, checked in `Batch::new`), converted when read: the checks that need a number
    /// (the tier table) then skip a conversion to `Tier` and back.
    tier: u8,
}

impl<'a> Segment<'a> {
    /// Index of the segment in the pass: 0 for the oldest, `totals().segments() - 1` for the newest.
    #[inline]
    pub fn index(&self) -> u64 {
        self.b.first_index + self.i as u64
    }

    /// How many segments of the pass are newer than this one: 0 for the newest. Handy for "keep the last N".
    #[inline]
    pub fn from_newest(&self) -> u64 {
        self.b.total.saturating_sub(self.index() + 1)
    }

    /// Start of the segment's time range, in milliseconds since the Unix epoch (UTC).
    #[inline]
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// End of the segment's time range, in milliseconds since the Unix epoch (UTC). Ages are measured from it.
    #[inline]
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// Start of the time range as a [`SystemTime`].
    pub fn start(&self) -> SystemTime {
        ms_to_system_time(self.start_ms())
    }

    /// End of the time range as a [`SystemTime`].
    pub fn end(&self) -> SystemTime {
        ms_to_system_time(self.end_ms())
    }

    /// Age in milliseconds: the pass's now minus the segment's end (negative for a segment from the future).
    #[inline]
    pub fn age_ms(&self) -> i64 {
        self.now_ms.saturating_sub(self.end_ms)
    }

    /// Age in whole days, rounded down (so `age_days() >= n` exactly when the segment is at least `n` days old);
    /// negative for a segment from the future.
    #[inline]
    pub fn age_days(&self) -> i64 {
        self.age_ms().div_euclid(DAY_MS)
    }

    /// Age as a [`Duration`], zero for a segment from the future.
    #[inline]
    pub fn age(&self) -> Duration {
        Duration::from_millis(self.age_ms().max(0) as u64)
    }

    /// Size in bytes as stored in the current tier (the compressed size for a compressed segment).
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of rows (records, lines), when the store knows it.
    #[inline]
    pub fn rows(&self) -> Option<u64> {
        u64::try_from(self.rows).ok()
    }

    /// Where the segment's bytes live now.
    #[inline]
    pub fn tier(&self) -> Tier {
        match self.tier {
            0 => Tier::Hot,
            1 => Tier::Compressed,
            _ => Tier::Archived,
        }
    }

    /// The tier's code in the batch (the index of its case: 0 hot, 1 compressed, 2 archived).
    #[inline]
    pub(crate) fn tier_code(&self) -> u8 {
        self.tier
    }

    /// The value of label `key`, `None` when the segment does not have it.
    ///
    /// O(1) after the first lookup of `key` in a batch; comparing the result with a literal
    /// (`seg.label("level") == Some("debug")`) is the idiomatic way to test a label, and
    /// [`label_is`](Segment::label_is) the fastest.
    #[inline(always)]
    pub fn label(&self, key: &str) -> Option<&'a str> {
        let id = *self.b.column(key).get(self.i)?;
        match self.symbols.get(id as usize) {
            Some(text) => text.as_deref(),
            None => {
                self.b.unknown_symbol(id);
                None
            }
        }
    }

    /// Whether the segment has label `key` with value `value`: the same as `seg.label(key) == Some(value)`, and the
    /// fastest way to test a label, as it compares symbol ids instead of text (both `key` and `value` are resolved
    /// once per batch and cached, so literals cost a few integer compares).
    #[inline(always)]
    pub fn label_is(&self, key: &str, value: &str) -> bool {
        let Some(&id) = self.b.column(key).get(self.i) else {
            return false;
        };
        if id as usize >= with_cache(|c| c.symbols.get()) {
            self.b.unknown_symbol(id);
            return false;
        }
        id == self.b.value_id(value)
    }

    /// The value of label `key` as a pass-wide [`Symbol`], for plugins that group or count by label: comparing
    /// and hashing a `u32` is cheaper than a string, and equal values have equal symbols throughout the pass.
    #[inline(always)]
    pub fn label_symbol(&self, key: &str) -> Option<Symbol> {
        let id = NonZeroU32::new(*self.b.column(key).get(self.i)?)?;
        if id.get() as usize >= self.symbols.len() {
            self.b.unknown_symbol(id.get());
            return None;
        }
        Some(Symbol(id))
    }

    /// The text of a symbol obtained from [`label_symbol`](Segment::label_symbol) in this pass.
    pub fn symbol_text(&self, symbol: Symbol) -> &'a str {
        self.symbols
            .get(symbol.id() as usize)
            .and_then(Option::as_deref)
            .unwrap_or("")
    }

    /// All labels of the segment, as `(key, value)`, in the batch's column order.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        let b = self.b;
        let i = self.i;
        b.columns.iter().filter_map(move |c| {
            let v = c.values[i];
            if v == 0 {
                None
            } else {
                Some((b.symbol_text(c.key)?, b.symbol_text(v)?))
            }
        })
    }

    /// The segment's name (for a directory store: its path relative to the dataset root, `/`-separated, without a
    /// `.zst` suffix).
    ///
    /// Names are not sent with the batch: the first call in a batch fetches all of the batch's names from the host
    /// in one call, so a plugin that never asks for names never pays for them.
    pub fn name(&self) -> &'a str {
        self.b.name(self.i)
    }

    /// The name, only if the plugin already made the SDK fetch this batch's names (for error messages).
    pub(crate) fn fetched_name(&self) -> Option<&'a str> {
        self.b.fetched_name(self.i)
    }

    /// Fails the pass with `message` once the current `observe` or `decide` call returns (its remaining segments
    /// are skipped and nothing of the pass is applied). Use it for conditions that make every decision suspect.
    pub fn fail_pass(&self, message: impl Into<String>) {
        self.b.fail(message.into());
    }
}

impl std::fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("index", &self.index())
            .field("end_ms", &self.end_ms())
            .field("bytes", &self.bytes())
            .field("tier", &self.tier())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_by_id_and_absent_keys_or_values_read_as_none() {
        // Symbols 1 = "level", 2 = "debug", 3 = "info", 4 = "zone"; one `level` column (absent for segment 2).
        let mut table = SymbolTable::new();
        table.append(&mut vec!["level".into(), "debug".into(), "info".into(), "zone".into()]);
        let labels = [LabelColumn {
            key: 1,
            values: vec![2, 3, 0],
        }];
        let columns = Columns {
            first_index: 0,
            start_ms: &[0; 3],
            end_ms: &[0; 3],
            rows: &[-1; 3],
            bytes: &[0; 3],
            tiers: &[0; 3],
            labels: &labels,
        };
        let b = Batch::new(columns, &table, 0, 3).unwrap();
        let mut seen = Vec::new();
        b.for_each(|_, seg| {
            seen.push((
                seg.label("level"),
                seg.label_symbol("level").map(|s| seg.symbol_text(s)),
                seg.label("zone"),
                seg.label("a-key-longer-than-sixteen-bytes"),
                seg.labels().collect::<Vec<_>>(),
            ));
            true
        });
        assert_eq!(
            seen,
            [
                (Some("debug"), Some("debug"), None, None, vec![("level", "debug")]),
                (Some("info"), Some("info"), None, None, vec![("level", "info")]),
                (None, None, None, None, vec![]),
            ]
        );
        assert!(b.take_failure().is_none());
    }

    #[test]
    fn the_eight_byte_tier_check_agrees_with_the_byte_check() {
        for bad in [3u8, 0x7f, 0x80, 0x82, 0xff] {
            for len in 0..20 {
                for at in 0..len {
                    let mut tiers = vec![2u8; len];
                    assert!(tier_codes_valid(&tiers));
                    tiers[at] = bad;
                    assert!(!tier_codes_valid(&tiers), "{bad} at {at} of {len}");
                }
            }
        }
        assert!(tier_codes_valid(&[0, 1, 2, 0, 1, 2, 0, 1, 2]));
    }

    #[test]
    fn keys_of_one_length_and_bucket_are_told_apart_and_not_kept_across_batches() {
        // "aa", "ea" and "ia" share a length and the low bits of their first byte: three keys, two ways.
        let mut table = SymbolTable::new();
        table.append(&mut vec![
            "aa".into(),
            "ea".into(),
            "ia".into(),
            "x".into(),
            "y".into(),
            "z".into(),
        ]);
        let labels = [
            LabelColumn {
                key: 1,
                values: vec![4],
            },
            LabelColumn {
                key: 2,
                values: vec![5],
            },
            LabelColumn {
                key: 3,
                values: vec![6],
            },
        ];
        let columns = |labels| Columns {
            first_index: 0,
            start_ms: &[0; 1],
            end_ms: &[0; 1],
            rows: &[-1; 1],
            bytes: &[0; 1],
            tiers: &[0; 1],
            labels,
        };
        let b = Batch::new(columns(&labels), &table, 0, 1).unwrap();
        let mut seen = Vec::new();
        b.for_each(|_, seg| {
            for _ in 0..2 {
                seen.push([seg.label("aa"), seg.label("ea"), seg.label("ia"), seg.label("ua")]);
                seen.push([seg.label("ia"), seg.label("aa"), seg.label("ea"), seg.label("")]);
            }
            assert!(seg.label_is("aa", "x") && seg.label_is("ea", "y") && seg.label_is("ia", "z"));
            assert!(!seg.label_is("aa", "y") && !seg.label_is("aa", "z") && !seg.label_is("ua", "x"));
            true
        });
        for s in seen.chunks(2) {
            assert_eq!(s[0], [Some("x"), Some("y"), Some("z"), None]);
            assert_eq!(s[1], [Some("z"), Some("x"), Some("y"), None]);
        }
        // The next batch lacks "ea": the cache of the previous one must not answer.
        let b = Batch::new(columns(&labels[..1]), &table, 0, 1).unwrap();
        b.for_each(|_, seg| {
            assert_eq!((seg.label("aa"), seg.label("ea")), (Some("x"), None));
            true
        });
    }

    #[test]
    fn label_is_compares_like_label_and_sees_symbols_added_later() {
        let mut table = SymbolTable::new();
        table.append(&mut vec!["level".into(), "debug".into()]);
        // "info" is no symbol yet: a test for it is false, and so is one for a label the batch lacks.
        let labels = [LabelColumn {
            key: 1,
            values: vec![2, 0],
        }];
        let columns = |labels| Columns {
            first_index: 0,
            start_ms: &[0; 2],
            end_ms: &[0; 2],
            rows: &[-1; 2],
            bytes: &[0; 2],
            tiers: &[0; 2],
            labels,
        };
        let mut seen = Vec::new();
        let b = Batch::new(columns(&labels), &table, 0, 4).unwrap();
        b.for_each(|_, seg| {
            seen.push([
                seg.label_is("level", "debug"),
                seg.label_is("level", "info"),
                seg.label_is("zone", "debug"),
                seg.label_is("level", "a value longer than sixteen bytes"),
            ]);
            true
        });
        assert_eq!(seen, [[true, false, false, false], [false, false, false, false]]);
        table.append(&mut vec!["info".into()]);
        let labels = [LabelColumn {
            key: 1,
            values: vec![3, 2],
        }];
        let b = Batch::new(columns(&labels), &table, 0, 4).unwrap();
        let mut seen = Vec::new();
        b.for_each(|_, seg| {
            seen.push((seg.label_is("level", "info"), seg.label_is("level", "debug")));
            true
        });
        assert_eq!(seen, [(true, false), (false, true)]);
    }
}
