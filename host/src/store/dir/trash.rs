//! The trash and the engine area: the root's `.retention-trash` (only ever a real directory) listed, purged and
//! restored from, with the archive's trash beside it; the temporaries' key and the state markers it also holds.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;

use object_store::path::Path as ObjectPath;
use rustix::fs::FileType;

use super::names::{TempKey, parse_batch_name, temp_parts};
use super::{DirectoryStore, Inner, TEMP_KEY, TRASH_DIR, ZST, logical, rel_join, split_rel};
use crate::crashpoint::hit_for;
use crate::segment::Tier;
use crate::store::beneath::{self, DirFd};
use crate::store::durable::io_err;
use crate::store::object::TrashedObject;
use crate::store::{Store, StoreError, TrashEntry};

/// One file of the trash.
#[derive(Debug, Clone)]
pub(super) struct TrashFile {
    pub(super) entry: TrashEntry,
    /// Its path relative to the root before it was trashed (with `.zst` when compressed): where a restore puts it.
    pub(super) rel: String,
}

/// An object of the archive's trash, as this dataset sees it.
#[derive(Debug, Clone)]
pub(super) struct TrashObject {
    pub(super) entry: TrashEntry,
    pub(super) location: ObjectPath,
    /// Its key relative to the archive's prefix before it was trashed: where a restore puts it.
    pub(super) rel: String,
}

impl Inner {
    /// The engine area `.retention-trash` as a real directory beneath the root (never a symlink); `None` when it does
    /// not exist and `create` is false.
    pub(super) fn area(&self, create: bool, listing: bool) -> Result<Option<DirFd<'_>>, StoreError> {
        let path = self.root.display(TRASH_DIR);
        let opened = if create {
            self.root.create_dirs(TRASH_DIR, 0o700).and_then(|d| match listing {
                true => self.root.dir(TRASH_DIR, true),
                false => Ok(d),
            })
        } else {
            self.root.dir(TRASH_DIR, listing)
        };
        match opened {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(StoreError::Refused(format!(
                "the trash {} is a symlink or not a directory: it is only ever used as a real directory inside \
                 the root; move it away",
                path.display()
            ))),
            Err(e) => Err(StoreError::io("cannot open the trash", path.display(), e)),
        }
    }

    /// The temporaries' key: read from the engine area, or (with `create`) made there when there is none.
    pub(super) fn temp_key(&self, create: bool) -> Result<Option<TempKey>, StoreError> {
        let mut cached = self.temp_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = *cached {
            return Ok(Some(k));
        }
        let path = self.root.display(&format!("{TRASH_DIR}/{TEMP_KEY}"));
        let read = |area: &DirFd<'_>| -> Result<Option<TempKey>, StoreError> {
            let (mut f, _) = match beneath::open_regular(area, TEMP_KEY) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io("cannot read the temporaries' key", path.display(), e)),
            };
            let mut text = String::new();
            (&mut f)
                .take(128)
                .read_to_string(&mut text)
                .map_err(io_err("cannot read the temporaries' key", &path))?;
            let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                StoreError::Refused(format!(
                    "{} is not a key retention wrote (64 hex digits); move it away",
                    path.display()
                ))
            })?;
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            Ok(Some(TempKey(k)))
        };
        let Some(area) = self.area(create, true)? else {
            return Ok(None);
        };
        if let Some(k) = read(&area)? {
            *cached = Some(k);
            return Ok(Some(k));
        }
        if !create {
            return Ok(None);
        }
        // 244 random bits from two v4 UUIDs, written under a name of its own, made durable, then renamed to the
        // key's name without replacing one another process made meanwhile (then that one is the key).
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let staging = format!("{TEMP_KEY}.{}", uuid::Uuid::new_v4());
        let write = || -> io::Result<()> {
            let mut f = beneath::create_new(&area, &staging, 0o600)?;
            f.write_all(hex::encode(k).as_bytes())?;
            f.sync_all()?;
            match beneath::rename_no_replace(&area, &staging, &area, TEMP_KEY) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = beneath::unlink(&area, &staging);
                    Ok(())
                }
                r => r,
            }?;
            rustix::fs::fsync(&area)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = beneath::unlink(&area, &staging);
            return Err(StoreError::io("cannot write the temporaries' key", path.display(), e));
        }
        let k = read(&area)?
            .ok_or_else(|| StoreError::Refused(format!("{} disappeared right after it was written", path.display())))?;
        *cached = Some(k);
        Ok(Some(k))
    }

    /// See [`Store::bind_state`].
    pub(super) fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let marker = format!(".state-{}", hex::encode(dataset.as_bytes()));
        let path = self.root.display(&format!("{TRASH_DIR}/{marker}"));
        let Some(area) = self.area(write, true)? else {
            // Never passed over for real (no engine area yet): nothing recorded, nothing to compare.
            return Ok(());
        };
        match beneath::open_regular(&area, &marker) {
            Ok((mut f, _)) => {
                let mut text = String::new();
                (&mut f)
                    .take(256)
                    .read_to_string(&mut text)
                    .map_err(io_err("cannot read the state marker", &path))?;
                let recorded = text.trim();
                if recorded == state_id {
                    return Ok(());
                }
                Err(StoreError::OtherState {
                    dataset: dataset.to_string(),
                    recorded: recorded.to_string(),
                    current: state_id.to_string(),
                    marker: path.display().to_string(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !write {
                    return Ok(());
                }
                let staging = format!("{marker}.{}", uuid::Uuid::new_v4());
                let r = (|| -> io::Result<()> {
                    let mut f = beneath::create_new(&area, &staging, 0o600)?;
                    f.write_all(format!("{state_id}\n").as_bytes())?;
                    f.sync_all()?;
                    beneath::rename_no_replace(&area, &staging, &area, &marker)?;
                    rustix::fs::fsync(&area)?;
                    Ok(())
                })();
                if let Err(e) = r {
                    let _ = beneath::unlink(&area, &staging);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        // Another pass wrote it meanwhile: compare with that one.
                        return self.bind_state(dataset, state_id, false);
                    }
                    return Err(StoreError::io("cannot write the state marker", path.display(), e));
                }
                Ok(())
            }
            Err(e) => Err(StoreError::io("cannot read the state marker", path.display(), e)),
        }
    }

    /// Lists the files of this dataset's segments in the trash (datasets may share a root, and so its trash), oldest
    /// first. Every directory is opened beneath the root without following symlinks; anything but a regular file in
    /// a batch we named is not an entry.
    pub(super) fn list_trash(&self) -> Result<Vec<TrashFile>, StoreError> {
        let mut out = Vec::new();
        let Some(top) = self.area(false, true)? else {
            return Ok(out);
        };
        let top_path = self.root.display(TRASH_DIR);
        let entries = rustix::fs::Dir::read_from(&top)
            .map_err(|e| StoreError::io("cannot read the trash", top_path.display(), e.into()))?;
        let mut batches = Vec::new();
        for e in entries {
            let e = e.map_err(|e| StoreError::io("cannot read the trash", top_path.display(), e.into()))?;
            let Ok(name) = e.file_name().to_str() else { continue };
            if let Some(times) = parse_batch_name(name) {
                batches.push((name.to_string(), times));
            }
        }
        for (batch, (trashed_at_ms, expires_at_ms)) in batches {
            let mut stack = vec![String::new()];
            while let Some(sub) = stack.pop() {
                let dir_rel = match sub.is_empty() {
                    true => format!("{TRASH_DIR}/{batch}"),
                    false => format!("{TRASH_DIR}/{batch}/{sub}"),
                };
                let dir = match self.root.dir(&dir_rel, true) {
                    Ok(d) => d,
                    // Emptied and removed meanwhile by a restore or a purge (of another dataset sharing the root);
                    // or not a directory at all: not ours.
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) => continue,
                    Err(e) => {
                        return Err(StoreError::io(
                            "cannot read the trash",
                            self.root.display(&dir_rel).display(),
                            e,
                        ));
                    }
                };
                let files = rustix::fs::Dir::read_from(&dir).map_err(|e| {
                    StoreError::io("cannot read the trash", self.root.display(&dir_rel).display(), e.into())
                })?;
                for f in files {
                    let f = f.map_err(|e| {
                        StoreError::io("cannot read the trash", self.root.display(&dir_rel).display(), e.into())
                    })?;
                    let raw = f.file_name().to_bytes();
                    if raw == b"." || raw == b".." {
                        continue;
                    }
                    let Ok(file_name) = std::str::from_utf8(raw) else {
                        continue;
                    };
                    let st = match beneath::stat(&dir, file_name) {
                        Ok(st) => st,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            let p = self.root.display(&format!("{dir_rel}/{file_name}"));
                            return Err(StoreError::io("cannot read the trash", p.display(), e));
                        }
                    };
                    let ft = FileType::from_raw_mode(st.st_mode as _);
                    if ft == FileType::Directory {
                        stack.push(rel_join(&sub, file_name));
                        continue;
                    }
                    // Only regular files are ever moved here, never temporaries.
                    if ft != FileType::RegularFile || temp_parts(file_name).is_some() {
                        continue;
                    }
                    let rel = rel_join(&sub, file_name);
                    let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
                    let name = if compressed {
                        &rel[..rel.len() - ZST.len()]
                    } else {
                        &rel[..]
                    };
                    if !self.matches(name) || self.sibling_of(name).is_some() {
                        continue;
                    }
                    out.push(TrashFile {
                        entry: TrashEntry {
                            name: name.to_string(),
                            tier: if compressed { Tier::Compressed } else { Tier::Hot },
                            bytes: st.st_size as u64,
                            trashed_at_ms,
                            expires_at_ms,
                            locator: format!("{dir_rel}/{file_name}"),
                            labels: Vec::new(),
                        },
                        rel,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            let key = |f: &TrashFile| (f.entry.trashed_at_ms, f.entry.name.clone(), f.entry.tier);
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// The batch of a trash file's locator (`.retention-trash/<batch>/<rel>`), checking that it is one.
    pub(super) fn trash_locator<'l>(&self, e: &'l TrashEntry) -> Result<&'l str, StoreError> {
        let batch = e
            .locator
            .strip_prefix(TRASH_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
            .filter(|(b, rest)| parse_batch_name(b).is_some() && beneath::check_rel(rest).is_ok())
            .map(|(b, _)| b);
        batch.ok_or_else(|| {
            StoreError::Refused(format!(
                "trash entry {:?} lies at {}, outside the trash: not purged",
                e.name,
                self.root.display(&e.locator).display()
            ))
        })
    }

    /// Deletes the trash files of `entries` (their locators: paths under the root, in the trash), then their batch
    /// directories if left empty, then makes it durable.
    pub(super) fn purge(&self, entries: Vec<TrashEntry>) -> Result<Vec<TrashEntry>, StoreError> {
        let mut purged = Vec::new();
        let mut batches = HashSet::new();
        for e in entries {
            // Only ever a file in the trash: a locator is ours, but never trusted to point elsewhere.
            let batch = self.trash_locator(&e)?.to_string();
            let path = self.root.display(&e.locator);
            let (dir, name) = match self.root.parent(&e.locator) {
                Ok(x) => x,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            };
            match beneath::stat(&dir, name) {
                Ok(st) if beneath::is_regular(&st) => {}
                Ok(_) => {
                    return Err(StoreError::Refused(format!(
                        "trash entry {} is no longer a regular file: not purged",
                        path.display()
                    )));
                }
                // Restored, or purged by another pass over the same root, meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            }
            match beneath::unlink(&dir, name) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            }
            hit_for("purge:removed", &path).map_err(io_err("cannot purge", &path))?;
            batches.insert(batch);
            purged.push(e);
        }
        for batch in &batches {
            self.prune(&format!("{TRASH_DIR}/{batch}"));
        }
        if !purged.is_empty() {
            let root = self.root.path();
            beneath::sync_fs(self.root.fd()).map_err(io_err("cannot sync", root))?;
            hit_for("purge:synced", root).map_err(io_err("cannot sync", root))?;
        }
        Ok(purged)
    }

    /// Removes the directory `rel` and the directories under it that hold nothing; best effort (a directory that is
    /// not empty, or anything else, stays). Nothing is followed: each directory is opened beneath the root.
    pub(super) fn prune(&self, rel: &str) {
        let Ok(dir) = self.root.dir(rel, true) else { return };
        if let Ok(entries) = rustix::fs::Dir::read_from(&dir) {
            let subdirs: Vec<String> = entries
                .flatten()
                .filter(|e| e.file_type() == FileType::Directory)
                .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
                .filter(|n| n != "." && n != "..")
                .collect();
            for s in subdirs {
                self.prune(&format!("{rel}/{s}"));
            }
        }
        drop(dir);
        if let Ok((parent, name)) = self.root.parent(rel) {
            let _ = beneath::rmdir(&parent, name);
        }
    }

    /// Renames the trash file `f` back into its place, which the caller found free (the rename refuses to replace
    /// anything that appeared since), then makes it durable. The place's directories are opened (created if they
    /// were removed since the drop) beneath the root without following a symlink.
    pub(super) fn restore(&self, f: &TrashFile) -> Result<(), StoreError> {
        let target = self.root.display(&f.rel);
        let (tparent, tname) = split_rel(&f.rel);
        // Its directories may have been removed since the drop; they are created as any new directory would be.
        let to = self.root.create_dirs(tparent, 0o777).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => StoreError::Refused(format!(
                "cannot restore {:?} to {}: {e}",
                f.entry.name,
                target.display()
            )),
            _ => StoreError::io("cannot create directory", self.root.display(tparent).display(), e),
        })?;
        let from_path = self.root.display(&f.entry.locator);
        let (from, fname) = self
            .root
            .parent(&f.entry.locator)
            .map_err(|e| StoreError::io("cannot restore from the trash", from_path.display(), e))?;
        if let Err(e) = beneath::rename_no_replace(&from, fname, &to, tname) {
            return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Taken {
                    doing: "restore",
                    name: f.entry.name.clone(),
                    place: target.display().to_string(),
                }
            } else {
                StoreError::io("cannot restore from the trash", from_path.display(), e)
            });
        }
        if let Err(e) = hit_for("restore:moved", &target) {
            // Leave it in the trash, as it was: the restore failed.
            return Err(match beneath::rename_no_replace(&to, tname, &from, fname) {
                Ok(()) => StoreError::io("cannot restore", target.display(), e),
                Err(back) => StoreError::Refused(format!(
                    "{} was restored but the restore failed ({e}) and putting it back in the trash too ({back})",
                    target.display()
                )),
            });
        }
        let root = self.root.path();
        beneath::sync_fs(self.root.fd()).map_err(|e| {
            StoreError::Refused(format!(
                "{} was restored, but the restore may not be durable: cannot sync {}: {e}",
                target.display(),
                root.display()
            ))
        })?;
        hit_for("restore:synced", root).map_err(io_err("cannot sync", root))?;
        // The batch keeps only what is still in it (best effort; a purge removes what stays).
        if let Ok(batch) = self.trash_locator(&f.entry) {
            self.prune(&format!("{TRASH_DIR}/{batch}"));
        }
        Ok(())
    }

    /// Whether anything is at `rel` beneath the root (without following symlinks); a component that is a symlink is
    /// an error, since nothing can be restored through it.
    pub(super) fn taken(&self, rel: &str) -> Result<bool, StoreError> {
        match self.root.parent(rel) {
            Ok((dir, name)) => match beneath::stat(&dir, name) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StoreError::io("cannot check", self.root.display(rel).display(), e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Refused(format!(
                "cannot restore to {}: {e}",
                self.root.display(rel).display()
            ))),
        }
    }
}

impl DirectoryStore {
    /// This dataset's objects in the archive's trash, oldest first (with their keys before the drop).
    pub(super) async fn archive_trash(&self) -> Result<Vec<TrashObject>, StoreError> {
        match &self.archive {
            Some(a) => Ok(self.trash_objects(a.list_trash().await?)),
            None => Ok(Vec::new()),
        }
    }

    pub(super) fn trash_objects(&self, listed: Vec<TrashedObject>) -> Vec<TrashObject> {
        let mut out: Vec<TrashObject> = listed
            .into_iter()
            .filter_map(|t| {
                let (trashed_at_ms, expires_at_ms) = parse_batch_name(&t.batch)?;
                let name = logical(&t.object.rel);
                if !self.inner.matches(name) {
                    return None;
                }
                Some(TrashObject {
                    entry: TrashEntry {
                        name: name.to_string(),
                        tier: Tier::Archived,
                        bytes: t.object.size,
                        trashed_at_ms,
                        expires_at_ms,
                        locator: t.object.location.to_string(),
                        labels: self.inner.labels_of(name),
                    },
                    rel: t.object.rel,
                    location: t.object.location,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.entry.trashed_at_ms, &a.entry.name).cmp(&(b.entry.trashed_at_ms, &b.entry.name)));
        out
    }

    /// Deletes the archive's trash objects of `entries` (their locators: object keys in the archive's trash).
    pub(super) async fn purge_objects(&self, entries: Vec<TrashEntry>) -> Result<Vec<TrashEntry>, StoreError> {
        let Some(a) = &self.archive else {
            return match entries.first() {
                None => Ok(Vec::new()),
                Some(e) => Err(StoreError::Refused(format!(
                    "trash entry {:?} is archived but {} has no archive",
                    e.name,
                    self.describe()
                ))),
            };
        };
        let root = self.root();
        let mut purged = Vec::new();
        let mut batches = HashSet::new();
        for e in entries {
            let location = ObjectPath::parse(&e.locator).ok();
            let batch = location.as_ref().and_then(|l| a.rel_of(l)).and_then(|rel| {
                Some(
                    rel.strip_prefix(TRASH_DIR)?
                        .strip_prefix('/')?
                        .split_once('/')?
                        .0
                        .to_string(),
                )
            });
            let (Some(location), Some(batch)) = (location, batch) else {
                return Err(StoreError::Refused(format!(
                    "trash entry {:?} lies at {:?}, outside the archive's trash: not purged",
                    e.name, e.locator
                )));
            };
            match a.delete(&location).await {
                Ok(()) => {}
                // Purged meanwhile by another pass over the same archive.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            hit_for("purge:removed", root).map_err(io_err("cannot purge", root))?;
            batches.insert(batch);
            purged.push(e);
        }
        if !purged.is_empty() {
            if let Some(adir) = a.local_dir() {
                // A local destination keeps the emptied directories; only the purged entries' batches are touched.
                for b in &batches {
                    remove_empty_dirs(&adir.join(TRASH_DIR).join(b));
                }
            }
            a.sync().await?;
            hit_for("purge:synced", root).map_err(io_err("cannot sync", root))?;
        }
        Ok(purged)
    }

    /// Copies the trashed object `t` back to its key, which the caller found free, then deletes the trash's copy.
    /// A crash between the two leaves equal copies, which `recover` settles in favour of the restored one.
    pub(super) async fn restore_object(&self, t: &TrashObject) -> Result<(), StoreError> {
        let a = self.archive.as_ref().expect("trash objects come from the archive");
        let root = self.root();
        let dst = a.key(&t.rel);
        a.copy_new(&t.location, &dst).await.map_err(|e| match e {
            StoreError::Taken { place, .. } => StoreError::Taken {
                doing: "restore",
                name: t.entry.name.clone(),
                place,
            },
            e => e,
        })?;
        if let Err(e) = hit_for("restore:moved", root) {
            // Leave it in the trash, as it was: the restore failed.
            let _ = a.delete(&dst).await;
            return Err(StoreError::io("cannot restore", a.display(&dst), e));
        }
        if let Err(e) = a.delete(&t.location).await {
            // Restored all the same: the next pass's recovery removes the trash's equal copy.
            tracing::warn!(
                "{} was restored but its copy in the trash could not be removed ({e}); the next pass removes it",
                t.entry.name
            );
        }
        a.sync().await.map_err(|e| {
            StoreError::Refused(format!(
                "{} was restored, but the restore may not be durable: {e}",
                a.display(&dst)
            ))
        })?;
        hit_for("restore:synced", root).map_err(io_err("cannot sync", root))
    }
}

/// Removes `dir` (of the engine's own `file://` archive) and the directories under it that hold nothing; best
/// effort.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
