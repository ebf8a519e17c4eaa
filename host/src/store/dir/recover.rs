//! Recovery: what interrupted actions left behind, settled before a scan presents segments: our temporaries (and
//! staged uploads) removed, duplicates found equal resolved to the later tier, copies in two places of the archive's
//! trash settled in favour of the one at the object's key.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::scan::{Copy, Inventory, Verdict};
use super::{DirectoryStore, TRASH_DIR, logical, split_rel};
use crate::crashpoint::hit_for;
use crate::store::beneath::{self, DirFd, FileId};
use crate::store::durable::{SyncSet, check_unchanged, io_err};
use crate::store::object::Object;
use crate::store::{Recovery, Skipped, StoreError, compare};

impl DirectoryStore {
    /// Removes temporaries and resolves duplicates found in `inv` (with `repair`; otherwise only reports them), and
    /// marks each duplicate group with what the scan must present.
    pub(super) async fn recover_inventory(&self, inv: &mut Inventory, repair: bool) -> Result<Recovery, StoreError> {
        let mut rec = Recovery {
            left_alone: std::mem::take(&mut inv.left_alone),
            ..Recovery::default()
        };
        let root = self.root();
        let temps = std::mem::take(&mut inv.temps);
        if repair && !temps.is_empty() {
            let t = temps.clone();
            self.blocking(move |inner| {
                for rel in &t {
                    let path = inner.root.display(rel);
                    let (dir, name) = match inner.root.parent(rel) {
                        Ok(x) => x,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("cannot remove temporary", path.display(), e)),
                    };
                    match beneath::unlink(&dir, name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io("cannot remove temporary", path.display(), e)),
                    }
                    hit_for("recover:temp-removed", &path).map_err(io_err("cannot remove temporary", &path))?;
                }
                Ok(())
            })
            .await?;
        }
        rec.temp_removed.extend(temps);
        if let Some(a) = &self.archive {
            let adir = a.local_dir().unwrap_or(Path::new(""));
            let staging = a
                .staging_leftovers()
                .await
                .map_err(|e| StoreError::io("cannot list archive directory", a.url(), e))?;
            for path in staging {
                let rel = path.strip_prefix(adir).unwrap_or(&path).to_string_lossy().into_owned();
                // An archive location belongs to one dataset (the config refuses two sharing one), but its staging
                // files are still matched to this dataset's segments.
                let target = rel.rsplit_once('#').map_or(&rel[..], |(t, _)| t);
                // A copy into or out of the archive's trash: `.retention-trash/<batch>/<rel>`.
                let target = target
                    .strip_prefix(TRASH_DIR)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.split_once('/'))
                    .map_or(target, |(_, r)| r);
                let ours = target.starts_with(&format!("{}/", crate::store::object::STAGING_DIR));
                if !ours && !self.inner.matches(logical(target)) {
                    continue;
                }
                if repair {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io("cannot remove staging file", path.display(), e)),
                    }
                    hit_for("recover:temp-removed", root).map_err(io_err("cannot remove staging file", &path))?;
                }
                rec.temp_removed
                    .push(format!("{}/{rel}", a.url().as_str().trim_end_matches('/')));
            }
            for location in std::mem::take(&mut inv.staged_objects) {
                if repair {
                    match a.delete(&location).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                    hit_for("recover:temp-removed", root).map_err(io_err("cannot remove staged upload", root))?;
                }
                rec.temp_removed.push(a.display(&location));
            }
        }
        let mut removed_local: Vec<(String, FileId)> = Vec::new();
        for g in &mut inv.groups {
            let mut verdict = self.resolve(g).await;
            if let Verdict::Same = verdict {
                let (latest, earlier) = g.copies.split_last().expect("a group has copies");
                for c in earlier {
                    let Copy::Local(f) = c else {
                        unreachable!("only one archived copy, always the latest")
                    };
                    if repair {
                        // The copy must still be what was compared (a log may have been appended to meanwhile).
                        let (rel, seen) = (f.rel.clone(), f.id);
                        let r = self
                            .blocking(move |inner| {
                                let root = &inner.root;
                                let path = root.display(&rel);
                                let (dir, name) = root
                                    .parent(&rel)
                                    .map_err(|e| StoreError::io("cannot check", path.display(), e))?;
                                let st = beneath::stat(&dir, name).map_err(io_err("cannot check", &path))?;
                                check_unchanged(&path, &seen, &FileId::of(&st))?;
                                beneath::unlink(&dir, name).map_err(io_err("cannot remove duplicate", &path))?;
                                hit_for("recover:duplicate-removed", &path)
                                    .map_err(io_err("cannot remove duplicate", &path))
                            })
                            .await;
                        match r {
                            Ok(()) => removed_local.push((f.rel.clone(), f.id)),
                            Err(e @ StoreError::Changed { .. }) => {
                                verdict = Verdict::Conflict(e.to_string());
                                break;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    rec.duplicates_resolved.push((g.name.clone(), latest.tier(), c.tier()));
                }
            }
            if let Verdict::Conflict(reason) = &verdict {
                rec.conflicts.push(Skipped {
                    name: g.name.clone(),
                    reason: reason.clone(),
                });
            }
            // What the scan that follows presents: the latest copy (earlier ones removed or not), or a conflict.
            g.verdict = Some(verdict);
        }
        self.settle_trashed_objects(inv, repair, &mut rec).await?;
        if !removed_local.is_empty() {
            self.blocking(move |inner| {
                let mut syncs = SyncSet::new(&inner.root);
                for (rel, id) in &removed_local {
                    syncs.note(id.dev, || {
                        let (dir, _) = split_rel(rel);
                        match inner.root.dir(dir, true) {
                            Ok(DirFd::Owned(fd)) => Some(fd),
                            _ => None,
                        }
                    });
                }
                syncs
                    .sync(&inner.root)
                    .map_err(|e| StoreError::io("cannot sync", inner.root.path().display(), e))
            })
            .await?;
        }
        Ok(rec)
    }

    /// Settles objects found both in place and in the archive's trash with equal content, which an interrupted move
    /// into the trash (a drop) or out of it (a restore) leaves: the trash's copy is removed, so the object stays where
    /// a scan sees it and the next pass decides again. Copies that differ are two contents (a name dropped, then
    /// archived anew) and both stay.
    pub(super) async fn settle_trashed_objects(
        &self,
        inv: &mut Inventory,
        repair: bool,
        rec: &mut Recovery,
    ) -> Result<(), StoreError> {
        let Some(a) = &self.archive else { return Ok(()) };
        if inv.trashed_objects.is_empty() {
            return Ok(());
        }
        let mut live: HashMap<&str, &Object> = inv.objects.iter().map(|o| (o.rel.as_str(), o)).collect();
        for g in &inv.groups {
            for c in &g.copies {
                if let Copy::Archived(o) = c {
                    live.insert(o.rel.as_str(), o);
                }
            }
        }
        let mut removed = Vec::new();
        for (k, t) in inv.trashed_objects.iter().enumerate() {
            let Some(o) = live.get(t.object.rel.as_str()) else {
                continue;
            };
            if o.size != t.object.size {
                continue;
            }
            let same = async {
                let x = a.reader(&o.location).await?;
                let y = a.reader(&t.object.location).await?;
                let (cx, cy) = (
                    compare::Copy {
                        reader: x,
                        compressed: false,
                        size: o.size,
                    },
                    compare::Copy {
                        reader: y,
                        compressed: false,
                        size: t.object.size,
                    },
                );
                tokio::task::spawn_blocking(move || compare::same(cx, cy))
                    .await
                    .map_err(|e| StoreError::io("cannot compare", a.url(), io::Error::other(e.to_string())))?
                    .map_err(|e| StoreError::io("cannot compare", a.display(&o.location), e))
            };
            let same = match same.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot compare {} with its copy in the archive's trash: {e}", o.rel);
                    false
                }
            };
            if !same {
                continue;
            }
            if repair {
                match a.delete(&t.object.location).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
                let root = self.root();
                hit_for("recover:duplicate-removed", root).map_err(io_err("cannot remove duplicate", root))?;
                removed.push(k);
            }
            rec.trash_copies_removed.push(logical(&t.object.rel).to_string());
        }
        if !removed.is_empty() {
            a.sync().await?;
            for k in removed.into_iter().rev() {
                inv.trashed_objects.remove(k);
            }
        }
        Ok(())
    }
}
