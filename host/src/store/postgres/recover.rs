//! Settling what an interrupted action left, from the intents tables carry (see [`super::intent`]), before a scan.
//! An archive or a restore is settled as `archive.rs` says, and staged uploads are removed. A table of the dataset
//! carrying a drop's intent outside the trash is
//! - still attached (a partition, or a TimescaleDB chunk: an inheritance child): the drop never detached it; the
//!   intent is cleared and it stays a segment;
//! - detach-pending (`DETACH ... CONCURRENTLY` interrupted between its two transactions): the detach is finalised
//!   (`DETACH PARTITION ... FINALIZE`), then it is moved into the trash (or dropped, with no grace period);
//! - detached: it is moved into the trash (or dropped).
//!
//! Without `repair` (a dry run) it only reports what it would do. A step that fails (a lock timeout) is reported as
//! a conflict and tried again by the next pass; the rows stay where they are.

use crate::store::{Recovery, Skipped, StoreError};

use crate::store::object::Archive;

use super::archive::{remove_staged, settle_archive};
use super::drop::{clear_intent, finish};
use super::intent::{Intent, Kind, PREFIX, trash_prefix};
use super::sql::{exec, qualified};
use super::unarchive::settle_restore;
use super::{PostgresConfig, backend};

pub(super) async fn recover(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    archive: Option<&Archive>,
    repair: bool,
) -> Result<Recovery, StoreError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, k.relname::text, d.description, (k.relispartition OR i.inhrelid IS NOT NULL), \
                    coalesce(i.inhdetachpending, false), pn.nspname::text, p.relname::text \
             FROM pg_description d \
             JOIN pg_class k ON k.oid = d.objoid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
             JOIN pg_namespace n ON n.oid = k.relnamespace \
             LEFT JOIN pg_inherits i ON i.inhrelid = k.oid \
             LEFT JOIN pg_class p ON p.oid = i.inhparent \
             LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE starts_with(d.description, $1) AND NOT starts_with(n.nspname, $2) AND k.relkind IN ('r', 'p')",
            &[&PREFIX, &trash_prefix()],
        )
        .await
        .map_err(|e| backend("cannot look for interrupted drops", e))?;
    let mut rec = Recovery::default();
    // Moves into and out of the archive's trash first: they never touch a table, and an archive's recovery below
    // must not take a trashed segment's object for one it wrote.
    if let Some(archive) = archive {
        super::archive_trash::recover(archive, c, repair, &mut rec).await?;
    }
    for row in rows {
        let (schema, name, comment): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let Some(intent) = Intent::parse(&comment) else {
            continue;
        };
        if !intent.of(c) {
            continue;
        }
        let (attached, pending): (bool, bool) = (row.get(3), row.get(4));
        let here = qualified(&schema, &name);
        let shown = intent.shown();
        if intent.kind != Kind::Drop {
            let Some(archive) = archive else {
                rec.conflicts.push(Skipped {
                    name: shown,
                    reason: format!(
                        "an interrupted {} of {here} cannot be settled without the dataset's archive_url",
                        if intent.kind == Kind::Archive {
                            "archive"
                        } else {
                            "restore"
                        }
                    ),
                });
                continue;
            };
            if !repair {
                rec.settled.push(Skipped {
                    name: shown,
                    reason: "an interrupted archive or restore: settled by the next real pass".into(),
                });
            } else if intent.bucket.is_some() {
                // A bucket's rows staged for an archive or a restore: only ever in the staging schema.
                if schema == super::bucket_archive::STAGING_SCHEMA {
                    super::bucket_archive::settle(client, archive, c, &name, &intent, &mut rec).await;
                }
            } else if intent.kind == Kind::Restore {
                settle_restore(client, archive, &schema, &name, &intent, &mut rec).await;
            } else if attached && intent.bound.starts_with('{') {
                // A TimescaleDB chunk (its bound is the slice it covers): archived without a detach, it holds
                // every row until the transaction that drops it commits.
                match super::chunk_archive::settle(client, archive, &here, &intent).await {
                    Ok(()) => rec.settled.push(Skipped {
                        name: shown,
                        reason: "an interrupted archive had not dropped the chunk: what it wrote deleted, its intent \
                                 cleared, it stays in the table"
                            .into(),
                    }),
                    Err(e) => rec.conflicts.push(Skipped {
                        name: shown,
                        reason: format!(
                            "an interrupted archive's objects could not be deleted ({e}); the chunk holds every row; \
                             the next pass tries again"
                        ),
                    }),
                }
            } else if attached && !pending {
                clear_intent(client, &here, &intent).await;
                rec.settled.push(Skipped {
                    name: shown,
                    reason: "an interrupted archive had not detached it: its intent cleared, it stays in the table"
                        .into(),
                });
            } else {
                settle_archive(client, archive, &schema, &name, &intent, pending, &mut rec).await;
            }
            continue;
        }
        let what = if attached && !pending {
            "an interrupted drop had not detached it: its intent cleared, it stays in the table"
        } else if intent.trash {
            "an interrupted drop had detached it: moved into the trash"
        } else {
            "an interrupted drop had detached it: dropped, as planned (no grace period)"
        };
        if !repair {
            rec.settled.push(Skipped {
                name: shown,
                reason: format!("{what} (would be, in a real pass)"),
            });
            continue;
        }
        let done: Result<(), StoreError> = async {
            if attached && !pending {
                clear_intent(client, &here, &intent).await;
                return Ok(());
            }
            if pending {
                let parent = qualified(&row.get::<_, String>(5), &row.get::<_, String>(6));
                exec(
                    client,
                    || format!("cannot finish detaching {here} from {parent}"),
                    &format!("ALTER TABLE {parent} DETACH PARTITION {here} FINALIZE"),
                )
                .await?;
            }
            finish(client, &schema, &name, &intent).await
        }
        .await;
        match done {
            Ok(()) => rec.settled.push(Skipped {
                name: shown,
                reason: what.to_string(),
            }),
            Err(e) => rec.conflicts.push(Skipped {
                name: shown,
                reason: format!("an interrupted drop could not be finished ({e}); its rows stay in {here}; the next pass tries again"),
            }),
        }
    }
    if let Some(archive) = archive {
        remove_staged(archive, repair, &mut rec).await?;
    }
    Ok(rec)
}
