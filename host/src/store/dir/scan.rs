//! The scan: one inventory of the root and the archive (names found in several places grouped), the copies of a group
//! compared, and the segments built from what recovery left.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::Arc;

use regex::{CaptureLocations, Regex};

use super::walk::{Described, Found};
use super::{DirectoryStore, Inner, TRASH_DIR, ZST, logical};
use crate::segment::{Labels, Segment, Sym, Symbols, Tier};
use crate::store::durable::open_checked;
use crate::store::object::{Object, TrashedObject};
use object_store::path::Path as ObjectPath;

use crate::store::{Scan, Skipped, StoreError, compare};

/// One copy of a segment that exists in several places.
pub(super) enum Copy {
    Local(Found),
    Archived(Object),
}

impl Copy {
    pub(super) fn tier(&self) -> Tier {
        match self {
            Copy::Local(f) => f.tier,
            Copy::Archived(_) => Tier::Archived,
        }
    }

    /// Whether its bytes are zstd-compressed.
    pub(super) fn compressed(&self) -> bool {
        match self {
            Copy::Local(f) => f.tier == Tier::Compressed,
            Copy::Archived(o) => o.rel.ends_with(ZST),
        }
    }

    pub(super) fn size(&self) -> u64 {
        match self {
            Copy::Local(f) => f.id.size,
            Copy::Archived(o) => o.size,
        }
    }

    /// Orders copies by tier, then plain before compressed.
    pub(super) fn rank(&self) -> (Tier, bool) {
        (self.tier(), self.compressed())
    }
}

/// A segment present in several places.
pub(super) struct Group {
    pub(super) name: String,
    /// Sorted by [`Copy::rank`]; the last is the latest.
    pub(super) copies: Vec<Copy>,
    /// Set once the copies were compared.
    pub(super) verdict: Option<Verdict>,
}

/// What to do with a [`Group`].
pub(super) enum Verdict {
    /// All copies hold the same content: keep the last, remove the others.
    Same,
    Conflict(String),
}

/// Everything a scan or a recovery looks at.
pub(super) struct Inventory {
    pub(super) files: Vec<Vec<Found>>,
    pub(super) objects: Vec<Object>,
    /// This dataset's objects in the archive's trash.
    pub(super) trashed_objects: Vec<TrashedObject>,
    /// Uploads staged in the archive by an interrupted archive.
    pub(super) staged_objects: Vec<ObjectPath>,
    pub(super) groups: Vec<Group>,
    pub(super) temps: Vec<String>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) left_alone: Vec<Skipped>,
}

impl DirectoryStore {
    /// Walks the root and lists the archive, grouping names found in more than one place.
    pub(super) async fn inventory(&self) -> Result<Inventory, StoreError> {
        let listing = match &self.archive {
            Some(a) => a.list_all().await?,
            None => Default::default(),
        };
        let (mut objects, mut trashed_objects) = (listing.objects, listing.trashed);
        objects.retain(|o| self.inner.matches(logical(&o.rel)));
        trashed_objects.retain(|t| self.inner.matches(logical(&t.object.rel)));
        let mut archived: HashSet<String> = HashSet::with_capacity(objects.len());
        let mut twice: HashSet<String> = HashSet::new();
        for o in &objects {
            let n = logical(&o.rel);
            if !archived.insert(n.to_string()) {
                twice.insert(n.to_string());
            }
        }
        let inner = self.inner.clone();
        let archived = Arc::new(archived);
        // Without a usable engine area (a trash that is a symlink) no temporary can be verified: each is left alone.
        let (key, area_error) = match self.blocking(|inner| inner.temp_key(false)).await {
            Ok(k) => (k, None),
            Err(e) => (None, Some(e)),
        };
        let mut walked = tokio::task::spawn_blocking(move || inner.walk(archived, key))
            .await
            .map_err(|e| StoreError::io("cannot walk", self.root().display(), io::Error::other(e.to_string())))?;
        if let Some(e) = area_error {
            walked.skipped.push(Skipped {
                name: TRASH_DIR.to_string(),
                reason: e.to_string(),
            });
        }
        let mut groups: HashMap<String, Vec<Copy>> = HashMap::new();
        let mut files = walked.files;
        for batch in &mut files {
            if batch.iter().any(|f| f.dup) {
                for f in batch.extract_if(.., |f| f.dup) {
                    groups.entry(f.name().to_string()).or_default().push(Copy::Local(f));
                }
            }
        }
        let mut objs = Vec::with_capacity(objects.len());
        for o in objects {
            let n = logical(&o.rel);
            if twice.contains(n) || groups.contains_key(n) {
                groups.entry(n.to_string()).or_default().push(Copy::Archived(o));
            } else {
                objs.push(o);
            }
        }
        let mut groups: Vec<Group> = groups
            .into_iter()
            .map(|(name, mut copies)| {
                copies.sort_by_key(Copy::rank);
                Group {
                    name,
                    copies,
                    verdict: None,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Inventory {
            files,
            objects: objs,
            trashed_objects,
            staged_objects: listing.staged,
            groups,
            temps: walked.temps,
            skipped: walked.skipped,
            left_alone: walked.left_alone,
        })
    }

    pub(super) fn copy_label(&self, c: &Copy) -> String {
        match c {
            Copy::Local(f) => format!("{} copy {}", f.tier, f.rel),
            Copy::Archived(o) => format!(
                "archived copy {}",
                self.archive
                    .as_ref()
                    .map_or_else(|| o.location.to_string(), |a| a.display(&o.location))
            ),
        }
    }

    /// A reader of a copy's stored bytes, opened safely (a local copy beneath the root, still the file the walk saw).
    pub(super) async fn open_copy(&self, c: &Copy) -> Result<compare::Copy, String> {
        let reader: Box<dyn Read + Send> = match c {
            Copy::Local(f) => {
                let inner = self.inner.clone();
                let (rel, seen) = (f.rel.clone(), f.id);
                let opened = tokio::task::spawn_blocking(move || {
                    open_checked(&inner.root, &rel, &seen).map(|(_, _, file, _)| file)
                })
                .await
                .map_err(|e| e.to_string())?;
                Box::new(opened.map_err(|e| format!("cannot read the {}: {e}", self.copy_label(c)))?)
            }
            Copy::Archived(o) => self
                .archive
                .as_ref()
                .expect("archived copies come from the archive")
                .reader(&o.location)
                .await
                .map_err(|e| format!("cannot read the {}: {e}", self.copy_label(c)))?,
        };
        Ok(compare::Copy {
            reader,
            compressed: c.compressed(),
            size: c.size(),
        })
    }

    /// Whether two copies hold the same content, at a cost bounded by the smaller (see [`compare`]). The error is a
    /// reason for a report.
    pub(super) async fn same_content(&self, a: &Copy, b: &Copy) -> Result<bool, String> {
        if a.compressed() == b.compressed() && a.size() != b.size() {
            return Ok(false);
        }
        let (x, y) = (self.open_copy(a).await?, self.open_copy(b).await?);
        let r = tokio::task::spawn_blocking(move || compare::same(x, y))
            .await
            .map_err(|e| e.to_string())?;
        r.map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => format!(
                "the {} is incomplete or corrupt ({e})",
                self.copy_label(if a.compressed() { a } else { b })
            ),
            _ => format!(
                "cannot compare the {} with the {}: {e}",
                self.copy_label(a),
                self.copy_label(b)
            ),
        })
    }

    pub(super) async fn resolve(&self, g: &Group) -> Verdict {
        let archived: Vec<&Copy> = g.copies.iter().filter(|c| c.tier() == Tier::Archived).collect();
        if archived.len() > 1 {
            return Verdict::Conflict(format!(
                "archived twice, as {} and {}; both kept until resolved by hand",
                self.copy_label(archived[0]),
                self.copy_label(archived[1])
            ));
        }
        let (latest, earlier) = g.copies.split_last().expect("a group has copies");
        for c in earlier {
            match self.same_content(c, latest).await {
                Ok(true) => {}
                Ok(false) => {
                    return Verdict::Conflict(format!(
                        "the {} differs from the {}; both kept until resolved by hand",
                        self.copy_label(c),
                        self.copy_label(latest)
                    ));
                }
                Err(reason) => return Verdict::Conflict(format!("{reason}; all copies kept until resolved by hand")),
            }
        }
        Verdict::Same
    }

    /// The segments of an inventory that [`DirectoryStore::recover_inventory`] went through.
    pub(super) async fn scan_inventory(&self, inv: Inventory, symbols: &mut Symbols) -> Result<Scan, StoreError> {
        let mut scan = Scan {
            segments: Vec::with_capacity(
                inv.files.iter().map(Vec::len).sum::<usize>() + inv.objects.len() + inv.groups.len(),
            ),
            skipped: inv.skipped,
        };
        let mut b = Builder::new(&self.inner, symbols);
        for f in inv.files.into_iter().flatten() {
            b.local(f, &mut scan);
        }
        for o in inv.objects {
            b.object(o, &mut scan);
        }
        for mut g in inv.groups {
            let verdict = match g.verdict.take() {
                Some(v) => v,
                None => self.resolve(&g).await,
            };
            match verdict {
                Verdict::Same => match g.copies.pop().expect("a group has copies") {
                    Copy::Local(f) => b.local(f, &mut scan),
                    Copy::Archived(o) => b.object(o, &mut scan),
                },
                Verdict::Conflict(reason) => scan.skipped.push(Skipped {
                    name: g.name,
                    reason: format!("duplicate with conflicting copies: {reason}"),
                }),
            }
        }
        Ok(scan)
    }
}

/// Turns walk results into segments, interning labels.
struct Builder<'a> {
    inner: &'a Inner,
    symbols: &'a mut Symbols,
    keys: Vec<Option<Sym>>,
    locs: Option<CaptureLocations>,
    cache: Option<(String, Option<i64>)>,
}

impl<'a> Builder<'a> {
    fn new(inner: &'a Inner, symbols: &'a mut Symbols) -> Self {
        Builder {
            keys: vec![None; inner.label_groups.len()],
            locs: inner.labels.as_ref().map(Regex::capture_locations),
            cache: None,
            inner,
            symbols,
        }
    }

    fn labels(&mut self, name: &str, d: &Described) -> Labels {
        let mut out = Labels::with_capacity(d.labels.len());
        for &(slot, s, e) in &d.labels {
            let key = match self.keys[slot as usize] {
                Some(k) => k,
                None => {
                    let k = self.symbols.intern(&self.inner.label_groups[slot as usize].1);
                    self.keys[slot as usize] = Some(k);
                    k
                }
            };
            out.push((key, self.symbols.intern(&name[s as usize..e as usize])));
        }
        out.sort_unstable_by_key(|l| l.0);
        out
    }

    fn local(&mut self, f: Found, scan: &mut Scan) {
        let name = f.name().to_string();
        match &f.described {
            Ok(d) => {
                let labels = self.labels(&name, d);
                let t = d.time_ms.unwrap_or(f.id.mtime_ns.div_euclid(1_000_000));
                scan.segments.push(Segment {
                    name,
                    tier: f.tier,
                    start_ms: t,
                    end_ms: t,
                    rows: None,
                    bytes: f.id.size,
                    labels,
                    locator: f.rel,
                    token: super::token_of(&f.id),
                });
            }
            Err(reason) => scan.skipped.push(Skipped {
                name,
                reason: reason.clone(),
            }),
        }
    }

    fn object(&mut self, o: Object, scan: &mut Scan) {
        let name = logical(&o.rel).to_string();
        match self.inner.describe(&name, &mut self.locs, &mut self.cache) {
            Ok(d) => {
                let labels = self.labels(&name, &d);
                let ms = o.last_modified.timestamp_millis();
                let t = d.time_ms.unwrap_or(ms);
                scan.segments.push(Segment {
                    name,
                    tier: Tier::Archived,
                    start_ms: t,
                    end_ms: t,
                    rows: None,
                    bytes: o.size,
                    labels,
                    locator: o.location.to_string(),
                    token: crate::store::object::trash::token_of(o.last_modified),
                });
            }
            Err(reason) => scan.skipped.push(Skipped { name, reason }),
        }
    }
}

impl Inner {
    /// The labels of a trash entry's name, as the scan would give its segment (for legal holds on the trash).
    pub(super) fn labels_of(&self, name: &str) -> Vec<(String, String)> {
        let Some(re) = &self.labels else { return Vec::new() };
        let Some(caps) = re.captures(name) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = self
            .label_groups
            .iter()
            .filter_map(|(g, key)| caps.get(*g).map(|m| (key.clone(), m.as_str().to_string())))
            .collect();
        out.sort();
        out
    }
}
