//! The walk: every directory beneath the root opened by its handle (never through a symlink), on a pool of threads of
//! its own; files stat'ed relative to their directory and described (labels, time) by the thread that read it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};

use regex::{CaptureLocations, Regex};
use rustix::fs::FileType;

use super::names::{TempKey, parse_time, temp_parts};
use super::{Inner, TRASH_DIR, ZST, logical, rel_join};
use crate::segment::Tier;
use crate::store::Skipped;
use crate::store::beneath::{self, FileId};

/// What a name tells about a segment: label spans `(slot, start, end)` in the name and the time from a label.
#[derive(Debug, Clone)]
pub(super) struct Described {
    pub(super) labels: smallvec::SmallVec<[(u16, u32, u32); 4]>,
    pub(super) time_ms: Option<i64>,
}

/// A file found by the walk.
#[derive(Debug)]
pub(super) struct Found {
    /// Path of the file relative to the root.
    pub(super) rel: String,
    pub(super) tier: Tier,
    /// Device, inode, size and mtime as the walk saw them.
    pub(super) id: FileId,
    pub(super) described: Result<Described, String>,
    /// Its name exists elsewhere too (hot and `.zst`, or local and archived).
    pub(super) dup: bool,
}

impl Found {
    pub(super) fn name(&self) -> &str {
        match self.tier {
            Tier::Compressed => &self.rel[..self.rel.len() - ZST.len()],
            _ => &self.rel,
        }
    }
}

#[derive(Default)]
pub(super) struct Walked {
    /// One batch per directory: appending them to one vector would copy them again and again.
    pub(super) files: Vec<Vec<Found>>,
    pub(super) temps: Vec<String>,
    pub(super) skipped: Vec<Skipped>,
    /// Files named like our temporaries that we did not write.
    pub(super) left_alone: Vec<Skipped>,
}

impl Inner {
    pub(super) fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name)
    }

    /// The dataset sharing this root whose globs match `name` too, if any.
    pub(super) fn sibling_of(&self, name: &str) -> Option<&str> {
        self.siblings
            .iter()
            .find(|s| s.include.is_match(name) && !s.exclude.is_match(name))
            .map(|s| s.dataset.as_str())
    }

    /// Why `name`, matched by this dataset's globs, is nonetheless not its segment (a sibling's globs match it too).
    pub(super) fn shared_reason(&self, name: &str) -> Option<String> {
        self.sibling_of(name).map(|other| {
            format!(
                "dataset {other:?} (same root) matches it too: a file belongs to one dataset, so neither manages \
                 it; narrow the include/exclude globs of one of them"
            )
        })
    }

    /// Labels and time of the segment `name`, or why it cannot be a segment.
    pub(super) fn describe(
        &self,
        name: &str,
        locs: &mut Option<CaptureLocations>,
        cache: &mut Option<(String, Option<i64>)>,
    ) -> Result<Described, String> {
        let mut labels: smallvec::SmallVec<[(u16, u32, u32); 4]> = smallvec::SmallVec::new();
        if let (Some(re), Some(locs)) = (&self.labels, locs.as_mut())
            && re.captures_read(locs, name).is_some()
        {
            for (slot, (group, _)) in self.label_groups.iter().enumerate() {
                if let Some((s, e)) = locs.get(*group) {
                    labels.push((slot as u16, s as u32, e as u32));
                }
            }
        }
        let time_ms = match &self.time {
            None => None,
            Some(t) => {
                let Some(&(_, s, e)) = labels.iter().find(|l| l.0 as usize == t.slot) else {
                    return Err(format!("no {:?} label in the name, so its age is unknown", t.name));
                };
                let value = &name[s as usize..e as usize];
                let ms = match cache {
                    Some((v, ms)) if v == value => *ms,
                    _ => {
                        let ms = parse_time(value, &t.items);
                        *cache = Some((value.to_string(), ms));
                        ms
                    }
                };
                match ms {
                    Some(ms) => Some(ms),
                    None => {
                        return Err(format!(
                            "label {}={value:?} is not a time in format {:?}, so its age is unknown",
                            t.name, t.format
                        ));
                    }
                }
            }
        };
        Ok(Described { labels, time_ms })
    }

    /// Walks the root on a pool of threads of its own (the global rayon pool may be busy compiling a plugin): each
    /// directory is opened beneath the root without following symlinks, read, its files stat'ed relative to it and
    /// described by the thread that read it.
    pub(super) fn walk(self: Arc<Self>, archived: Arc<HashSet<String>>, key: Option<TempKey>) -> Walked {
        let sink = Mutex::new(Walked::default());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("retention-walk-{i}"))
            .build();
        let walk_one = |rel: &str| self.read_dir(rel, &archived, key.as_ref(), &sink);
        match pool {
            Ok(pool) => {
                fn go<'s, F: Fn(&str) -> Vec<String> + Sync>(s: &rayon::Scope<'s>, f: &'s F, rel: String) {
                    for sub in f(&rel) {
                        s.spawn(move |s| go(s, f, sub));
                    }
                }
                pool.scope(|s| go(s, &walk_one, String::new()));
            }
            Err(_) => {
                let mut stack = vec![String::new()];
                while let Some(rel) = stack.pop() {
                    stack.extend(walk_one(&rel));
                }
            }
        }
        sink.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Processes one directory: files become [`Found`]s, temporaries are noted; returns the subdirectories to walk.
    pub(super) fn read_dir(
        &self,
        rel_dir: &str,
        archived: &HashSet<String>,
        key: Option<&TempKey>,
        sink: &Mutex<Walked>,
    ) -> Vec<String> {
        let mut out = Walked::default();
        let mut subdirs = Vec::new();
        let finish = |out: Walked, files: Vec<Found>| {
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            if !files.is_empty() {
                s.files.push(files);
            }
            s.temps.extend(out.temps);
            s.skipped.extend(out.skipped);
            s.left_alone.extend(out.left_alone);
        };
        let dir = match self.root.dir(rel_dir, true) {
            Ok(d) => d,
            Err(e) => {
                out.skipped.push(Skipped {
                    name: rel_dir.to_string(),
                    reason: format!("cannot open directory: {e}"),
                });
                finish(out, Vec::new());
                return subdirs;
            }
        };
        if !rel_dir.is_empty()
            && let Ok(st) = rustix::fs::fstat(&dir)
            && let id = FileId::of(&st)
            && self.skip_dirs.contains(&(id.dev, id.ino))
        {
            // The engine's own directory, or another dataset's root: never part of this dataset.
            return subdirs;
        }
        let entries = match rustix::fs::Dir::read_from(&dir) {
            Ok(d) => d,
            Err(e) => {
                out.skipped.push(Skipped {
                    name: rel_dir.to_string(),
                    reason: format!("cannot read directory: {e}"),
                });
                finish(out, Vec::new());
                return subdirs;
            }
        };
        let mut locs = self.labels.as_ref().map(Regex::capture_locations);
        let mut cache = None;
        let mut files = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.skipped.push(Skipped {
                        name: rel_dir.to_string(),
                        reason: format!("cannot read directory: {e}"),
                    });
                    break;
                }
            };
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let mut ft = entry.file_type();
            if ft == FileType::Unknown {
                // Some filesystems do not say in the listing.
                ft = match rustix::fs::statat(&dir, entry.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode as _),
                    Err(_) => continue,
                };
            }
            let Ok(file_name) = std::str::from_utf8(raw) else {
                let lossy = rel_join(rel_dir, &String::from_utf8_lossy(raw));
                if ft == FileType::Directory || self.matches(logical(&lossy)) {
                    out.skipped.push(Skipped {
                        name: lossy,
                        reason: "name is not valid UTF-8".to_string(),
                    });
                }
                continue;
            };
            if ft == FileType::Directory {
                // The trash is never part of the dataset: not walked, so no glob can make its files segments.
                if !(rel_dir.is_empty() && file_name == TRASH_DIR) {
                    subdirs.push(rel_join(rel_dir, file_name));
                }
                continue;
            }
            if let Some((base, tag)) = temp_parts(file_name) {
                // Only the temporaries of this dataset's segments: datasets may share a root.
                let target = rel_join(rel_dir, base);
                if self.matches(logical(&target)) {
                    let rel = rel_join(rel_dir, file_name);
                    match (key, tag) {
                        (Some(k), Some(tag)) if k.tag(&target) == tag => out.temps.push(rel),
                        _ => out.left_alone.push(Skipped {
                            name: rel,
                            reason: "named like a temporary of retention, but not one this store wrote (its tag \
                                     does not verify): left alone"
                                .to_string(),
                        }),
                    }
                }
                continue;
            }
            let rel = rel_join(rel_dir, file_name);
            let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
            let name = if compressed {
                &rel[..rel.len() - ZST.len()]
            } else {
                &rel[..]
            };
            if !self.matches(name) {
                continue;
            }
            let not_regular = || Skipped {
                name: name.to_string(),
                reason: format!("{rel} is not a regular file (symlinks and special files are never segments)"),
            };
            if ft != FileType::RegularFile {
                out.skipped.push(not_regular());
                continue;
            }
            let st = match beneath::stat(&dir, file_name) {
                Ok(st) => st,
                // Removed since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    out.skipped.push(Skipped {
                        name: name.to_string(),
                        reason: format!("cannot stat {rel}: {err}"),
                    });
                    continue;
                }
            };
            if !beneath::is_regular(&st) {
                out.skipped.push(not_regular());
                continue;
            }
            let id = FileId::of(&st);
            if !self.skip_files.is_empty() && self.skip_files.contains(&(id.dev, id.ino)) {
                // The engine's own file (its config): never a segment.
                continue;
            }
            if !self.siblings.is_empty()
                && let Some(reason) = self.shared_reason(name)
            {
                out.skipped.push(Skipped {
                    name: name.to_string(),
                    reason,
                });
                continue;
            }
            let described = self.describe(name, &mut locs, &mut cache);
            let dup = !archived.is_empty() && archived.contains(name);
            files.push(Found {
                tier: if compressed { Tier::Compressed } else { Tier::Hot },
                id,
                described,
                dup,
                rel,
            });
        }
        mark_sibling_duplicates(&mut files);
        finish(out, files);
        subdirs
    }
}

/// Marks files of one directory present both hot and compressed.
pub(super) fn mark_sibling_duplicates(files: &mut [Found]) {
    if !files.iter().any(|f| f.tier == Tier::Compressed) || !files.iter().any(|f| f.tier == Tier::Hot) {
        return;
    }
    let compressed: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.tier == Tier::Compressed)
        .map(|(i, f)| (f.name(), i))
        .collect();
    let pairs: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.tier == Tier::Hot)
        .filter_map(|(i, f)| compressed.get(f.name()).map(|&j| (i, j)))
        .collect();
    for (i, j) in pairs {
        files[i].dup = true;
        files[j].dup = true;
    }
}
