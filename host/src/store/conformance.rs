//! Store-independent checks that every store's tests run, the way object_store's `integration.rs` is run by each of
//! its backends: written once against the [`Store`] contract, run by the directory store now and by every later store
//! through a [`Harness`] of its own (how to put data into it, change it, and see where every content is).
//!
//! What they hold any store to: a scan lists what was written, once each; every action its [`Capabilities`] allow
//! moves the content where the action says and a later scan sees it there; an action they deny, or the contract's tier
//! table forbids, is refused and touches nothing; a segment changed since the scan is refused and left as it was; the
//! trash restores exactly and purges exactly what it is given; and at every failure point of the action protocols
//! every content stays whole in one recoverable place, which the next recovery settles to exactly one.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Applied, ApplyOptions, Store, StoreError, Trash, Work};
use crate::segment::{Action, Segment, Symbols, Tier};

/// Where a content is: a segment's tier, or the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Tier(Tier),
    Trash,
}

/// What a store's tests provide for the checks: a fresh dataset per call of [`Harness::fresh`].
#[async_trait]
pub trait Harness: Send + Sync {
    /// Makes the dataset empty and fresh (a new directory, schema, bucket...), forgetting any earlier one.
    async fn fresh(&mut self);
    /// Opens the store over the current dataset (anew, as every pass does).
    async fn open(&self) -> Arc<dyn Store>;
    /// Writes the new segment `name` holding `content`, in its first tier (hot).
    async fn write(&self, name: &str, content: &[u8]);
    /// Changes the segment `name` after a scan, as a writer would (its content grows).
    async fn change(&self, name: &str);
    /// Every content of the dataset, by segment name, with where each copy is (decompressed, whole: a partial copy is
    /// a failure of the harness's own, e.g. a panic).
    async fn census(&self) -> Vec<(String, Place, Vec<u8>)>;
    /// The failure points of the store's action protocols (names for `crate::crashpoint`), in protocol order.
    fn failure_points(&self) -> Vec<&'static str>;
    /// Makes every step at `point` fail until the returned guard is dropped (for this harness's dataset only).
    fn fail_at(&self, point: &'static str) -> Box<dyn std::any::Any + Send>;
    /// Whether a drop keeps the segment in the trash (else it deletes it at once, and its content may be gone).
    fn drops_to_trash(&self) -> bool;
    /// Whether a scanned segment's `bytes` is its content's length (a file's size; a table store reports the space a
    /// partition takes instead).
    fn sizes_are_content_lengths(&self) -> bool {
        true
    }
    /// The name the harness wrote for the segment (or trash entry) the store shows as `shown` (a store that names
    /// segments itself, as a table's time buckets are, maps them back).
    fn written_name(&self, shown: &str) -> String {
        shown.to_string()
    }
    /// Whether a restore from the trash merges into a segment written since under the same name (a time bucket is a
    /// range of rows) rather than being refused as taken.
    fn restore_merges(&self) -> bool {
        false
    }
}

/// The census as `name -> [(place, content)]`, sorted.
async fn census(h: &dyn Harness) -> BTreeMap<String, Vec<(Place, Vec<u8>)>> {
    let mut out: BTreeMap<String, Vec<(Place, Vec<u8>)>> = BTreeMap::new();
    for (name, place, content) in h.census().await {
        out.entry(name).or_default().push((place, content));
    }
    for copies in out.values_mut() {
        copies.sort();
    }
    out
}

async fn scan(store: &dyn Store) -> (Vec<Segment>, Symbols) {
    let mut symbols = Symbols::new();
    let (_, scan) = store.scan(true, &mut symbols).await.expect("the scan succeeds");
    (scan.segments, symbols)
}

fn seg<'a>(h: &dyn Harness, segments: &'a [Segment], name: &str) -> &'a Segment {
    segments
        .iter()
        .find(|s| h.written_name(&s.name) == name)
        .unwrap_or_else(|| panic!("no segment {name}"))
}

async fn apply(store: &dyn Store, plan: &[(&Segment, Action)]) -> Vec<Result<Applied, StoreError>> {
    let work: Vec<Work<'_>> = plan.iter().map(|&(segment, action)| Work { segment, action }).collect();
    let opts = ApplyOptions {
        parallelism: 2,
        now_ms: chrono::Utc::now().timestamp_millis(),
        progress: &|_| {},
        cancel: None,
    };
    let results = store.apply(&work, &opts).await;
    assert_eq!(results.len(), work.len(), "one result per action");
    results
        .into_iter()
        .map(|r| r.expect("an uncancelled apply starts every action"))
        .collect()
}

fn content(i: usize) -> Vec<u8> {
    format!("segment {i}: a log line\n").repeat(20 + i).into_bytes()
}

/// Where an action takes a segment's content from `tier`, for a store that drops into a trash (`trashes`).
fn place_after(action: Action, tier: Tier, trashes: bool) -> Option<Place> {
    match action {
        Action::Keep => Some(Place::Tier(tier)),
        Action::Compress => Some(Place::Tier(Tier::Compressed)),
        Action::Archive => Some(Place::Tier(Tier::Archived)),
        Action::Drop => trashes.then_some(Place::Trash),
    }
}

/// A scan lists every segment written, once, hot, with its size; a fresh dataset has nothing to recover.
pub async fn scan_lists_every_segment_written_once(h: &mut dyn Harness) {
    h.fresh().await;
    for i in 0..5 {
        h.write(&format!("s{i}"), &content(i)).await;
    }
    let store = h.open().await;
    assert!(store.recover(true).await.unwrap().is_empty(), "nothing to recover");
    let (segments, _) = scan(&*store).await;
    let mut names: Vec<String> = segments.iter().map(|s| h.written_name(&s.name)).collect();
    names.sort();
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    for s in &segments {
        assert_eq!(s.tier, Tier::Hot, "{}", s.name);
        let i: usize = h.written_name(&s.name)[1..].parse().unwrap();
        if h.sizes_are_content_lengths() {
            assert_eq!(s.bytes, content(i).len() as u64, "{}", s.name);
        } else {
            assert!(s.bytes > 0, "{}", s.name);
        }
    }
}

/// Every action the store's capabilities allow, from every tier, takes the content where the action says, exactly,
/// and a later scan presents it in its new tier (or not at all after a drop).
pub async fn every_allowed_action_moves_the_content_where_it_says(h: &mut dyn Harness) {
    for tier in [Tier::Hot, Tier::Compressed, Tier::Archived] {
        for action in [Action::Compress, Action::Archive, Action::Drop] {
            h.fresh().await;
            let store = h.open().await;
            if store.capabilities().check(tier, action).is_err() {
                continue;
            }
            let body = content(3);
            h.write("x", &body).await;
            // Bring the segment to `tier` first, through the store's own actions.
            let to_tier = match tier {
                Tier::Hot => vec![],
                Tier::Compressed => vec![Action::Compress],
                Tier::Archived => vec![Action::Archive],
            };
            let mut reached = true;
            for step in to_tier {
                let (segments, _) = scan(&*store).await;
                let s = seg(&*h, &segments, "x");
                if store.capabilities().check(s.tier, step).is_err() {
                    reached = false;
                    break;
                }
                apply(&*store, &[(s, step)]).await.pop().unwrap().unwrap();
            }
            if !reached {
                continue;
            }
            let (segments, _) = scan(&*store).await;
            let s = seg(&*h, &segments, "x");
            assert_eq!(s.tier, tier);
            let trashes = store.trash().is_some();
            let applied = apply(&*store, &[(s, action)]).await.pop().unwrap();
            let applied = applied.unwrap_or_else(|e| panic!("{action} from {tier}: {e}"));
            assert_eq!(applied.trashed, action == Action::Drop && trashes && applied.trashed);
            let c = census(h).await;
            let want = place_after(action, tier, applied.trashed);
            match want {
                Some(place) => assert_eq!(
                    c.get("x").cloned().unwrap_or_default(),
                    [(place, body.clone())],
                    "{action} from {tier}"
                ),
                None => assert!(!c.contains_key("x"), "{action} from {tier}: {c:?}"),
            }
            let (segments, _) = scan(&*store).await;
            match want {
                Some(Place::Tier(t)) => assert_eq!(seg(&*h, &segments, "x").tier, t, "{action} from {tier}"),
                _ => assert!(
                    segments.iter().all(|s| h.written_name(&s.name) != "x"),
                    "{action} from {tier}"
                ),
            }
        }
    }
}

/// An action the store's capabilities deny, or the contract's tier table forbids, is refused as unsupported and
/// touches nothing.
pub async fn an_action_the_store_cannot_do_is_refused_and_touches_nothing(h: &mut dyn Harness) {
    h.fresh().await;
    h.write("x", &content(1)).await;
    let store = h.open().await;
    let (segments, _) = scan(&*store).await;
    let s = seg(&*h, &segments, "x");
    let before = census(h).await;
    for action in [Action::Compress, Action::Archive, Action::Drop] {
        if store.capabilities().check(s.tier, action).is_ok() {
            continue;
        }
        let e = apply(&*store, &[(s, action)]).await.pop().unwrap().unwrap_err();
        assert!(matches!(e, StoreError::Unsupported { .. }), "{action}: {e}");
    }
    // What the contract forbids, whatever the store: compressing a compressed segment.
    let mut forged = s.clone();
    forged.tier = Tier::Compressed;
    if let Err(e) = apply(&*store, &[(&forged, Action::Compress)]).await.pop().unwrap() {
        assert!(matches!(e, StoreError::Unsupported { .. }), "{e}");
    } else {
        panic!("compress from compressed was applied");
    }
    assert_eq!(census(h).await, before, "nothing changed");
}

/// A segment changed between the scan and the apply is refused ([`StoreError::Changed`]) by every allowed action and
/// left as it was changed.
pub async fn a_segment_changed_since_the_scan_is_refused_by_every_action(h: &mut dyn Harness) {
    for action in [Action::Compress, Action::Archive, Action::Drop] {
        h.fresh().await;
        h.write("x", &content(2)).await;
        let store = h.open().await;
        let (segments, _) = scan(&*store).await;
        let s = seg(&*h, &segments, "x");
        if store.capabilities().check(s.tier, action).is_err() {
            continue;
        }
        h.change("x").await;
        let changed = census(h).await;
        let e = apply(&*store, &[(s, action)]).await.pop().unwrap().unwrap_err();
        assert!(matches!(e, StoreError::Changed { .. }), "{action}: {e}");
        assert_eq!(census(h).await, changed, "{action}: left as it was");
    }
}

/// With a trash: a drop is listed, restored exactly where and as it was, refused while the place is taken; a purge
/// deletes exactly the entries it is given and skips one gone meanwhile.
pub async fn the_trash_restores_and_purges_exactly(h: &mut dyn Harness) {
    h.fresh().await;
    let store = h.open().await;
    let Some(_) = store.trash() else { return };
    for i in 0..3 {
        h.write(&format!("t{i}"), &content(i)).await;
    }
    let before = census(h).await;
    let (segments, _) = scan(&*store).await;
    let plan: Vec<(&Segment, Action)> = segments.iter().map(|s| (s, Action::Drop)).collect();
    let trashed: Vec<bool> = apply(&*store, &plan)
        .await
        .into_iter()
        .map(|r| r.unwrap().trashed)
        .collect();
    if trashed.iter().all(|t| !t) {
        // This store (or its config: no grace period) deletes a drop at once: nothing waits in the trash.
        assert!(census(h).await.is_empty(), "dropped for good");
        return;
    }
    assert!(trashed.iter().all(|t| *t), "every drop goes to the trash, or none does");
    let trash: &dyn Trash = store.trash().unwrap();
    let listed = trash.list().await.unwrap();
    let mut names: Vec<String> = listed.iter().map(|e| h.written_name(&e.name)).collect();
    names.sort();
    assert_eq!(names, ["t0", "t1", "t2"]);
    let shown = |n: &str| {
        listed
            .iter()
            .find(|e| h.written_name(&e.name) == n)
            .map(|e| e.name.clone())
            .unwrap()
    };
    // Restored exactly.
    let e = trash.restore(&shown("t0")).await.unwrap();
    assert_eq!(h.written_name(&e.name), "t0");
    assert_eq!(census(h).await["t0"], before["t0"]);
    assert!(matches!(
        trash.restore(&shown("t0")).await.unwrap_err(),
        StoreError::NotInTrash { .. }
    ));
    // Purged exactly: t2 only.
    let due: Vec<_> = trash
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| h.written_name(&e.name) == "t2")
        .collect();
    let purged = trash.purge(&due).await.unwrap();
    assert_eq!(purged.len(), 1);
    assert!(!census(h).await.contains_key("t2"), "purged for good");
    assert!(
        trash.purge(&due).await.unwrap().is_empty(),
        "an entry gone meanwhile is skipped"
    );
    // Taken: the name exists again, so the restore is refused and both stay (t1's entry stays restorable); or, for
    // a store whose restore merges, the restored content joins what was written since.
    h.write("t1", b"a new t1").await;
    let restored = trash.restore(&shown("t1")).await;
    let left: Vec<String> = trash
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| h.written_name(&e.name))
        .collect();
    if h.restore_merges() {
        restored.unwrap();
        assert!(left.is_empty(), "{left:?}");
        let t1 = &census(h).await["t1"];
        assert_eq!(t1.len(), 1, "one place: {t1:?}");
        assert_eq!(t1[0].1.len(), before["t1"][0].1.len() + b"a new t1".len());
    } else {
        assert!(matches!(restored.unwrap_err(), StoreError::Taken { .. }));
        assert_eq!(left, ["t1"]);
    }
}

/// At every failure point of the action protocols, every content stays whole in at least one place, and once the next
/// scan has recovered, in exactly one (the trash counting as one).
pub async fn every_failure_point_keeps_every_content_whole_and_recovery_settles_it(h: &mut dyn Harness) {
    for point in h.failure_points() {
        h.fresh().await;
        for i in 0..4 {
            h.write(&format!("f{i}"), &content(i)).await;
        }
        let originals = census(h).await;
        let store = h.open().await;
        let (segments, _) = scan(&*store).await;
        let caps = store.capabilities();
        let plan: Vec<(&Segment, Action)> = segments
            .iter()
            .zip([Action::Compress, Action::Archive, Action::Drop, Action::Compress])
            .filter(|(s, a)| caps.check(s.tier, *a).is_ok())
            .collect();
        // A drop that deletes at once may have deleted, whatever its result says: its content need not be anywhere.
        let may_be_gone: Vec<String> = match h.drops_to_trash() {
            true => Vec::new(),
            false => plan
                .iter()
                .filter(|(_, a)| *a == Action::Drop)
                .map(|(s, _)| s.name.clone())
                .collect(),
        };
        {
            let _fail = h.fail_at(point);
            let _ = apply(&*store, &plan).await;
        }
        let check = |c: &BTreeMap<String, Vec<(Place, Vec<u8>)>>, settled: bool| {
            for (name, copies) in &originals {
                let want = &copies[0].1;
                let got = c.get(name).cloned().unwrap_or_default();
                if got.is_empty() && may_be_gone.contains(name) {
                    continue;
                }
                assert!(!got.is_empty(), "{point}: {name} is nowhere");
                for (place, bytes) in &got {
                    assert!(
                        bytes == want,
                        "{point}: the {place:?} copy of {name} is not its content"
                    );
                }
                if settled {
                    assert_eq!(
                        got.len(),
                        1,
                        "{point}: {name} is in {} places after recovery",
                        got.len()
                    );
                }
            }
        };
        check(&census(h).await, false);
        let again = h.open().await;
        again
            .recover(true)
            .await
            .unwrap_or_else(|e| panic!("{point}: recovery failed: {e}"));
        check(&census(h).await, true);
    }
}

/// Runs every check on `h`.
pub async fn run_all(h: &mut dyn Harness) {
    scan_lists_every_segment_written_once(h).await;
    every_allowed_action_moves_the_content_where_it_says(h).await;
    an_action_the_store_cannot_do_is_refused_and_touches_nothing(h).await;
    a_segment_changed_since_the_scan_is_refused_by_every_action(h).await;
    the_trash_restores_and_purges_exactly(h).await;
    every_failure_point_keeps_every_content_whole_and_recovery_settles_it(h).await;
}
