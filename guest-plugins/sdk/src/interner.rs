//! Per-batch interning of reason texts: `verdicts.reasons` refers to each distinct text once, so a reason shared by
//! thousands of segments crosses the boundary as one string.
//!
//! Lookups are tiered by cost, because this runs once per segment: an immutable text (`&'static str`, `Rc<str>`) is
//! recognised by address and length among the last few such reasons (no hashing, no comparison of text); any text
//! equal to the previous reason is recognised by one comparison; everything else goes through a small
//! open-addressing hash table of ids.

use std::rc::Rc;

use crate::decision::Reason;

/// Immutable reasons remembered by address per batch; policies rarely use more distinct fixed texts than this.
const STATIC_SLOTS: usize = 8;

/// An immutable text seen in this batch, by address. For an `Rc<str>` the entry holds a clone: while it lives, no
/// other text can be allocated at the same address, so address and length keep identifying the text.
struct StaticEntry {
    ptr: *const u8,
    len: usize,
    id: u32,
    _keep: Option<Rc<str>>,
}

const EMPTY_ENTRY: StaticEntry = StaticEntry {
    ptr: std::ptr::null(),
    len: 0,
    id: 0,
    _keep: None,
};

/// The reason texts of one batch and the lookup structures over them.
pub(crate) struct Interner {
    /// Distinct texts; id `n` is `texts[n - 1]`.
    texts: Vec<String>,
    /// Open-addressing table of ids (0 = empty slot); its length is 0 or a power of two, at most half full.
    table: Vec<u32>,
    statics: [StaticEntry; STATIC_SLOTS],
    /// Number of valid entries in `statics`, then the slot to overwrite next (round robin).
    statics_used: usize,
    statics_next: usize,
    /// Id of the most recently interned text, 0 when none.
    last: u32,
}

impl Interner {
    pub(crate) fn new() -> Interner {
        Interner {
            texts: Vec::new(),
            table: Vec::new(),
            statics: [EMPTY_ENTRY; STATIC_SLOTS],
            statics_used: 0,
            statics_next: 0,
            last: 0,
        }
    }

    /// Forgets the previous batch's texts (ids restart at 1); keeps the table's allocation.
    pub(crate) fn reset(&mut self) {
        self.texts = Vec::new();
        self.table.fill(0);
        self.statics = [EMPTY_ENTRY; STATIC_SLOTS];
        self.statics_used = 0;
        self.statics_next = 0;
        self.last = 0;
    }

    /// The id of `reason` in this batch (0 for no reason or an empty text), adding it if new.
    ///
    /// Inlined into the plugin's per-segment loop: only "no reason" and a static text seen before in this batch are
    /// handled here; everything else is out of line, so that the reason's parts stay in registers (a `Reason` passed
    /// to a call by value lives in memory, and it would be stored there on every segment).
    #[inline(always)]
    pub(crate) fn intern(&mut self, reason: Reason) -> u32 {
        match reason {
            Reason::None => 0,
            Reason::Static(s) => {
                // Unused entries have a null address, which no text has: no need to stop at `statics_used`.
                for e in &self.statics {
                    if e.ptr == s.as_ptr() && e.len == s.len() {
                        self.last = e.id;
                        return e.id;
                    }
                }
                self.intern_new_static(s)
            }
            other => self.intern_other(other),
        }
    }

    #[cold]
    #[inline(never)]
    fn intern_new_static(&mut self, s: &'static str) -> u32 {
        self.intern_fixed(s, None)
    }

    #[inline(never)]
    fn intern_other(&mut self, reason: Reason) -> u32 {
        match reason {
            Reason::None => 0,
            Reason::Static(s) => self.intern_fixed(s, None),
            Reason::Shared(s) => self.intern_fixed(&s, Some(s.clone())),
            Reason::Owned(s) => {
                if s.is_empty() {
                    0
                } else {
                    let id = self.lookup(&s);
                    if id != 0 { id } else { self.insert(s) }
                }
            }
        }
    }

    /// The text of id `id` of this batch (`None` for 0).
    pub(crate) fn text(&self, id: u32) -> Option<&str> {
        self.texts.get((id as usize).checked_sub(1)?).map(String::as_str)
    }

    /// Takes the batch's distinct texts, in id order.
    pub(crate) fn take_texts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.texts)
    }

    #[inline]
    fn intern_fixed(&mut self, s: &str, keep: Option<Rc<str>>) -> u32 {
        // These texts cannot change while they live, so the same address and length mean the same text.
        for e in &self.statics[..self.statics_used] {
            if e.ptr == s.as_ptr() && e.len == s.len() {
                self.last = e.id;
                return e.id;
            }
        }
        // An empty text is no reason (id 0), remembered like the others so that it takes the fast path next time.
        let id = if s.is_empty() { 0 } else { self.intern_text(s) };
        let entry = StaticEntry {
            ptr: s.as_ptr(),
            len: s.len(),
            id,
            _keep: keep,
        };
        if self.statics_used < STATIC_SLOTS {
            self.statics[self.statics_used] = entry;
            self.statics_used += 1;
        } else {
            self.statics[self.statics_next] = entry;
            self.statics_next = (self.statics_next + 1) % STATIC_SLOTS;
        }
        id
    }

    fn intern_text(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let id = self.lookup(s);
        if id != 0 { id } else { self.insert(s.to_owned()) }
    }

    /// The id of `s` if this batch has it, else 0; remembers a hit as the last text.
    fn lookup(&mut self, s: &str) -> u32 {
        if self.last != 0 && self.texts[self.last as usize - 1] == s {
            return self.last;
        }
        if self.table.is_empty() {
            return 0;
        }
        let mask = self.table.len() - 1;
        let mut slot = hash(s.as_bytes()) as usize & mask;
        loop {
            let id = self.table[slot];
            if id == 0 {
                return 0;
            }
            if self.texts[id as usize - 1] == s {
                self.last = id;
                return id;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Adds a text that is not in the table yet and returns its new id.
    fn insert(&mut self, s: String) -> u32 {
        if (self.texts.len() + 1) * 2 > self.table.len() {
            self.grow();
        }
        let mask = self.table.len() - 1;
        let mut slot = hash(s.as_bytes()) as usize & mask;
        while self.table[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.texts.push(s);
        let id = self.texts.len() as u32;
        self.table[slot] = id;
        self.last = id;
        id
    }

    fn grow(&mut self) {
        let len = (self.table.len() * 2).max(16);
        self.table.clear();
        self.table.resize(len, 0);
        let mask = len - 1;
        for (i, t) in self.texts.iter().enumerate() {
            let mut slot = hash(t.as_bytes()) as usize & mask;
            while self.table[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.table[slot] = i as u32 + 1;
        }
    }
}

/// A fast, non-cryptographic hash (FxHash-style, 8 bytes at a time); reason texts come from the plugin itself, so
/// there is no adversary to defend against.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("chunk of 8"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    // Fold the high bits down: the table index uses the low bits.
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_an_id_and_ids_start_at_one() {
        let mut i = Interner::new();
        assert_eq!(i.intern(Reason::None), 0);
        assert_eq!(i.intern(Reason::Static("")), 0);
        assert_eq!(i.intern(Reason::Static("a")), 1);
        assert_eq!(i.intern(Reason::Owned("b".into())), 2);
        assert_eq!(i.intern(Reason::Shared("a".into())), 1);
        assert_eq!(i.intern(Reason::Owned("a".into())), 1);
        assert_eq!(i.intern(Reason::Static("b")), 2);
        assert_eq!(i.take_texts(), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn many_distinct_texts_survive_growth_and_reset_restarts_ids() {
        let mut i = Interner::new();
        for n in 0..1000 {
            assert_eq!(i.intern(Reason::Owned(format!("reason {n}"))), n + 1);
        }
        for n in (0..1000).rev() {
            assert_eq!(i.intern(Reason::Shared(format!("reason {n}").into())), n + 1);
        }
        assert_eq!(i.take_texts().len(), 1000);
        i.reset();
        assert_eq!(i.intern(Reason::Owned("reason 999".into())), 1);
    }

    #[test]
    fn a_shared_text_is_recognised_by_address_and_a_dropped_ones_address_is_not_trusted() {
        let mut i = Interner::new();
        let a: Rc<str> = "first".into();
        assert_eq!(i.intern(Reason::Shared(a.clone())), 1);
        assert_eq!(i.intern(Reason::Shared(a.clone())), 1);
        drop(a);
        // The interner still holds the first text, so a new allocation cannot reuse its address.
        let b: Rc<str> = "other".into();
        assert_eq!(i.intern(Reason::Shared(b)), 2);
    }

    #[test]
    fn more_static_reasons_than_slots_still_intern_correctly() {
        const R: [&str; 12] = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"];
        let mut i = Interner::new();
        for round in 0..3 {
            for (n, r) in R.iter().enumerate() {
                assert_eq!(i.intern(Reason::Static(r)), n as u32 + 1, "round {round}");
            }
        }
    }
}
