//! Archiving a time bucket of a plain table as Parquet, crash-safely, and restoring one.
//!
//! A bucket is a range of rows of a table that stays in use, so it cannot be detached and locked the way a
//! partition is. Its rows are moved first, in batches, into a staging table of their own (`_retention_staging`, one
//! table per bucket, created with the first batch and carrying the archive's [`Intent`]), exactly as a drop moves
//! them into a trash table (`bucket::move_rows`: no transaction holds more than one batch). The staging table is
//! then archived as a detached partition is (`archive::copy_out`: in one transaction holding its SHARE lock, the
//! rows read into Parquet, uploaded under a staging key, read back and verified, copied to the bucket's key,
//! the manifest written, the staging table dropped). So a row is at every instant in the table, in the staging
//! table, or in a verified archive object, and what is deleted is exactly what was archived.
//!
//! **Late rows**: a row written into the bucket while its rows are moved is moved too when its time is still ahead
//! of the batches (then it is archived with them), else it stays in the table; nothing writes into the staging
//! table, and its SHARE lock is held from before the copy to the drop. A row written later is in the table, never
//! deleted unarchived: the next scan shows the bucket again with those rows, and a later pass can archive them
//! under another key (each object's key and name carry the time it was archived).
//!
//! **Recovery** of a staging table carrying an archive intent: if the manifest is there, its Parquet reads back
//! equal to it and the staging table's rows digest to the manifest's, the staging table is dropped (the archive
//! finished); otherwise the objects are deleted and the rows moved back into the table in batches.
//!
//! **Restore** (`retention archive restore <bucket>@<time>`): the Parquet is read back and checked against its
//! manifest; in one transaction a staging table is created, filled by `COPY ... FROM STDIN` and marked with a
//! restore intent; then the objects are deleted, and the rows moved into the table in batches (identity values as
//! they were, beside any rows written into the bucket since). Recovery of a staging table carrying a restore intent
//! deletes what is left of the objects and moves the rest of its rows in.

use crate::segment::Segment;
use crate::store::object::Archive;
use crate::store::{Applied, Recovery, Skipped, StoreError};

use super::archive::{self, Manifest, copy_out, delete_objects, hit};
use super::bucket::{self, Params, bucket_of, counted, labels_of, move_rows, trash_table_name};
use super::columnar;
use super::config::Buckets;
use super::intent::{BucketRef, Intent, Kind};
use super::sql::{ident, literal, qualified};
use super::unarchive::{self, Unarchived};
use super::{PostgresConfig, backend};

/// The schema of the staging tables.
pub const STAGING_SCHEMA: &str = "_retention_staging";

/// The failure points of a bucket's archive before the copy (the copy's are [`archive::CRASH_POINTS`] from
/// `pg-archive:copied` on), in protocol order.
pub const CRASH_POINTS: &[&str] = &[
    "pg-bucket-archive:first-batch",
    "pg-bucket-archive:batch",
    "pg-bucket-archive:moved",
];

/// The failure points of a bucket's restore from the archive, in protocol order (the last is the move back's).
pub const RESTORE_POINTS: &[&str] = &[
    "pg-bucket-unarchive:staged",
    "pg-bucket-unarchive:manifest-deleted",
    "pg-bucket-unarchive:objects-deleted",
    "pg-bucket:restored-batch",
];

fn table(c: &PostgresConfig) -> String {
    qualified(&c.schema, &c.table)
}

/// The bucket's object key (relative to the archive's prefix) when archived at `now_ms`, the `seq`-th time at that
/// instant (a clock set by `--now`): `<schema>/<table>/<staging table's name>_<now_ms>[-<seq>].parquet`.
fn rel(c: &PostgresConfig, bucket: &BucketRef, now_ms: i64, seq: u32) -> String {
    let seq = if seq == 0 { String::new() } else { format!("-{seq}") };
    format!(
        "{}/{}/{}_{now_ms}{seq}.parquet",
        archive::part(&c.schema),
        archive::part(&c.table),
        trash_table_name(c, bucket)
    )
}

/// Archives the bucket of `segment`.
pub(super) async fn archive_bucket(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    b: &Buckets,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let bucket = bucket_of(b, segment)?;
    let params = Params::of(&bucket)?;
    counted(client, c, b, &bucket, &params, segment).await?;
    let name = table(c);
    let oid: u32 = client
        .query_one("SELECT to_regclass($1)::oid", &[&name])
        .await
        .map_err(|e| backend(format!("cannot look up {name}"), e))?
        .get(0);
    // Every column's type checked before anything is written.
    let cols = columnar::columns(client, oid, &name).await?;
    // The first key free: a bucket archived again at the same instant (rows written into it since) gets the next.
    let mut seq = 0;
    let rel = loop {
        let rel = rel(c, &bucket, now_ms, seq);
        let mut free = true;
        for key in [rel.clone(), archive::manifest_rel(&rel)] {
            free &= archive.head(&archive.key(&key)).await?.is_none();
        }
        if free {
            break rel;
        }
        if seq == 99 {
            return Err(StoreError::Taken {
                doing: "archive",
                name: segment.name.clone(),
                place: archive.display(&archive.key(&rel)),
            });
        }
        seq += 1;
    };
    let intent = Intent {
        kind: Kind::Archive,
        key: Some(rel),
        table: (c.schema.clone(), c.table.clone()),
        origin: (c.schema.clone(), c.table.clone()),
        parent: (c.schema.clone(), c.table.clone()),
        bound: String::new(),
        trash: false,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms,
        labels: labels_of(c, &bucket),
        comment: None,
        bucket: Some(bucket.clone()),
    };
    let staging = trash_table_name(c, &bucket);
    let moved = move_rows(
        client,
        c,
        b,
        segment,
        &params,
        &intent,
        (STAGING_SCHEMA, staging.clone()),
        CRASH_POINTS,
    )
    .await;
    let copied = match moved {
        Ok(()) => {
            copy_out(
                client,
                archive,
                c,
                STAGING_SCHEMA,
                &staging,
                &intent,
                &cols,
                (bucket.start_ms, bucket.end_ms),
                now_ms,
                &format!("DROP TABLE {}", qualified(STAGING_SCHEMA, &staging)),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let Err(e) = copied else {
        return Ok(Applied {
            bytes_before: segment.bytes,
            bytes_after: 0,
            trashed: false,
        });
    };
    // Rows moved into the staging table (a batch failed, or the copy did): settle it now (forward if the archive is
    // verified, else back into the table) rather than leave them out of the table until the next pass.
    let here = qualified(STAGING_SCHEMA, &staging);
    let staged = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&here])
        .await
        .is_ok_and(|r| r.get::<_, bool>(0));
    if staged {
        let mut rec = Recovery::default();
        settle(client, archive, c, &staging, &intent, &mut rec).await;
    }
    Err(e)
}

/// Settles staging table `name` (in [`STAGING_SCHEMA`]) carrying `intent` (see the module's doc). Records what it
/// did in `rec`.
pub(super) async fn settle(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    name: &str,
    intent: &Intent,
    rec: &mut Recovery,
) {
    let here = qualified(STAGING_SCHEMA, name);
    let shown = intent.shown();
    let rel = intent.key.clone().unwrap_or_default();
    let result: Result<&str, StoreError> = async {
        if intent.kind == Kind::Archive && archive::drop_if_archived(client, archive, &here, &rel).await? {
            return Ok(
                "an interrupted archive had verified its object, which holds exactly the rows it moved out: their \
                 staging table dropped",
            );
        }
        delete_objects(archive, &rel).await?;
        bucket::restore(client, c, &here, &shown).await?;
        Ok(match intent.kind {
            Kind::Restore => {
                "an interrupted restore from the archive had staged its rows: its objects deleted, the rows moved \
                 into the table"
            }
            _ => "an interrupted archive had no verified object: what it wrote deleted, the rows moved back into the table",
        })
    }
    .await;
    match result {
        Ok(what) => rec.settled.push(Skipped {
            name: shown,
            reason: what.to_string(),
        }),
        Err(e) => rec.conflicts.push(Skipped {
            name: shown,
            reason: format!(
                "an interrupted archive or restore could not be settled ({e}); its rows stay in {here}; the next pass \
                 tries again"
            ),
        }),
    }
}

/// Restores the archived bucket shown as `name` (key `rel`, manifest `m`) into the table.
pub(super) async fn unarchive(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    name: &str,
    rel: &str,
    m: Manifest,
) -> Result<Unarchived, StoreError> {
    let bucket = m.bucket.clone().expect("a bucket's manifest names it");
    let parent = table(c);
    if m.table != (c.schema.clone(), c.table.clone()) {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: it was archived from {}.{}, not {parent}",
            m.table.0, m.table.1
        )));
    }
    // A staging table of its own (`_r`): an archive of the same bucket may be under way beside it.
    let staging = format!("{}_r", trash_table_name(c, &bucket));
    let target = qualified(STAGING_SCHEMA, &staging);
    super::sql::free_for_restore(client, &target, name).await?;
    unarchive::same_columns(client, archive, &parent, rel, &m, name).await?;
    let (_local, batches) = unarchive::fetch(archive, rel, &m, name).await?;
    let intent = unarchive::restore_intent(&m, rel);
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {target} (LIKE {parent}); COMMENT ON TABLE {target} IS {}",
        ident(STAGING_SCHEMA),
        literal(&intent.to_comment())
    ))
    .await
    .map_err(|e| backend(format!("cannot create {target}"), e))?;
    let rows = unarchive::fill(&tx, &target, &m, batches, name).await?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the restore of {name:?} into {target}"), e))?;
    hit(c, "pg-bucket-unarchive:staged")?;
    archive.delete(&archive.key(&archive::manifest_rel(rel))).await?;
    hit(c, "pg-bucket-unarchive:manifest-deleted")?;
    archive.delete(&archive.key(rel)).await?;
    archive.sync().await?;
    hit(c, "pg-bucket-unarchive:objects-deleted")?;
    bucket::restore(client, c, &target, name).await?;
    Ok(Unarchived {
        name: name.to_string(),
        rows,
        bytes: m.parquet_bytes,
        archived_at_ms: m.archived_at_ms,
    })
}
