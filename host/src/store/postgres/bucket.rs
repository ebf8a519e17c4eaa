//! A plain table as a dataset: a segment per time bucket of `time_column` (`date_bin` of the configured width,
//! aligned on 2000-01-01 00:00 UTC) and per value of the `label_columns`.
//!
//! **Scan**: one `GROUP BY` over the table (`FROM ONLY`: never an inheritance child's rows); rows are exact, bytes
//! an estimate: the bucket's rows times the table's average row (`pg_total_relation_size` over the rows counted),
//! indexes and TOAST included. Rows whose time is NULL are in no bucket and never touched (reported as skipped).
//!
//! **Drop** moves the bucket's rows in batches of `delete_batch_rows`, each batch one statement in a transaction of
//! its own, `WITH moved AS (DELETE ... RETURNING *) INSERT INTO <trash table> SELECT * FROM moved`: no transaction
//! holds row locks or grows the WAL beyond one batch, and a row is at every instant in the table or in the trash
//! table, never both or neither. The trash table (`CREATE TABLE ... (LIKE t)`, in the batch's trash schema) is
//! created, and the intent recorded on it, in the transaction of the first batch, so an interrupted drop leaves no
//! empty trash table: only rows moved or not. With `trash_grace_secs = 0` the batches are plain `DELETE`s.
//!
//! Batches follow the time index (see [`Batches`]): the time of the row after the bucket's next n is looked up, then
//! the rows before it (n of them, but for ties) are removed by their time range (a batch that fails, e.g. on a lock
//! timeout, fails the drop cleanly: the rows moved so far go back into the table); rows sharing one time beyond a batch are taken by `ctid`. The
//! statements are prepared once with generic plans (planning a range at the edge of the index with actual values
//! walks the index entries of the rows just removed). A row updated during the drop is rechecked by the server
//! under its row lock and moved or left whole, never both. A row written into the bucket during the drop is moved
//! too when its time is still ahead of the batches (it is in the bucket the plan dropped, and in the trash it can be
//! restored), else it stays in the table; the drop is refused when the bucket's row count is not the one the scan
//! saw, so a plan decided on other rows is tried again by the next pass.
//!
//! **Restore** moves the rows back the same way, in batches (`INSERT ... OVERRIDING SYSTEM VALUE` of the columns
//! that are not generated, so identity values come back as they were), then drops the emptied trash table. Rows
//! written into the bucket since stay beside them: a bucket is a range of rows, not a table to re-attach.

use chrono::{DateTime, Utc};

use crate::crashpoint;
use crate::segment::{ChangeToken, Labels, Segment, Symbols, Tier};
use crate::store::{Applied, Scan, Skipped, StoreError};

use super::config::Buckets;
use super::intent::{BucketRef, Intent, Kind};
use super::sql::{ident, literal, qualified};
use super::{PostgresConfig, backend};

/// The failure points of a bucket's drop, in protocol order (names for [`crate::crashpoint`]).
pub const CRASH_POINTS: &[&str] = &["pg-bucket:first-batch", "pg-bucket:batch", "pg-bucket:moved"];

fn hit(c: &PostgresConfig, point: &str) -> Result<(), StoreError> {
    crashpoint::hit_for(point, &c.scope).map_err(|e| StoreError::io("crash point", point, e))
}

fn table(c: &PostgresConfig) -> String {
    qualified(&c.schema, &c.table)
}

/// Checks that the time column and the label columns exist, the time column of a time type.
pub(super) async fn check_columns(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    b: &Buckets,
) -> Result<(), StoreError> {
    let name = table(c);
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&name],
        )
        .await
        .map_err(|e| backend(format!("cannot read the columns of {name}"), e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let listed = || columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let Some((_, ty)) = columns.iter().find(|(n, _)| *n == b.time_column) else {
        return Err(StoreError::Refused(format!(
            "time_column = {:?}: table {name} has no such column (its columns: {}); set time_column to its timestamp \
             column",
            b.time_column,
            listed()
        )));
    };
    let time_typed = ["timestamp with time zone", "timestamp without time zone", "date"].contains(&ty.as_str())
        || ty.starts_with("timestamp(");
    if !time_typed {
        return Err(StoreError::Refused(format!(
            "time_column = {:?}: column {} of {name} is {ty}, not a timestamp or date",
            b.time_column, b.time_column
        )));
    }
    for l in &b.label_columns {
        if !columns.iter().any(|(n, _)| n == l) {
            return Err(StoreError::Refused(format!(
                "label_columns: table {name} has no column {l:?} (its columns: {})",
                listed()
            )));
        }
    }
    Ok(())
}

/// The labels of a bucket: `schema`, `table` and each label column that is not NULL (sorted by key).
pub(super) fn labels_of(c: &PostgresConfig, bucket: &BucketRef) -> Vec<(String, String)> {
    let mut labels = vec![
        ("schema".to_string(), c.schema.clone()),
        ("table".to_string(), c.table.clone()),
    ];
    for (k, v) in &bucket.labels {
        if let Some(v) = v
            && !labels.iter().any(|(have, _)| have == k)
        {
            labels.push((k.clone(), v.clone()));
        }
    }
    labels.sort();
    labels
}

/// Every bucket holding rows: a segment each, oldest first.
pub(super) async fn scan(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    b: &Buckets,
    symbols: &mut Symbols,
) -> Result<Scan, StoreError> {
    let name = table(c);
    let inner: String = b
        .label_columns
        .iter()
        .enumerate()
        .map(|(i, l)| format!(", {}::text AS l{}", ident(l), i + 1))
        .collect();
    let group: String = (2..=b.label_columns.len() + 1).map(|i| format!(", {i}")).collect();
    let outer: String = (1..=b.label_columns.len()).map(|i| format!(", l{i}")).collect();
    // Grouped by the bucket's timestamp, converted once per group (per row, the conversion costs more than the scan);
    // the width a constant (a parameter cast per row is not folded).
    let sql = format!(
        "SELECT (extract(epoch FROM b) * 1000)::bigint{outer}, n FROM (SELECT date_bin({}::interval, {}::timestamptz, \
         '2000-01-01 00:00:00+00') AS b{inner}, count(*)::bigint AS n FROM ONLY {name} GROUP BY 1{group}) g",
        literal(&b.interval),
        ident(&b.time_column)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| backend(format!("cannot list the time buckets of {name}"), e))?;
    let size: i64 = client
        .query_one("SELECT pg_total_relation_size(to_regclass($1))::bigint", &[&name])
        .await
        .map_err(|e| backend(format!("cannot read the size of {name}"), e))?
        .get(0);
    let n = b.label_columns.len();
    let total: i64 = rows.iter().map(|r| r.get::<_, i64>(n + 1)).sum();
    let per_row = if total > 0 {
        size.max(0) as f64 / total as f64
    } else {
        0.0
    };
    let mut segments = Vec::with_capacity(rows.len());
    let mut skipped = Vec::new();
    let mut untimed = 0;
    for row in rows {
        let count: i64 = row.get(n + 1);
        let values: Vec<Option<String>> = (1..=n).map(|i| row.get(i)).collect();
        let Some(start_ms) = row.get::<_, Option<i64>>(0) else {
            untimed += count;
            continue;
        };
        let bucket = BucketRef {
            start_ms,
            end_ms: start_ms + b.width_ms,
            labels: b.label_columns.iter().cloned().zip(values).collect(),
        };
        let mut labels: Labels = labels_of(c, &bucket)
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        segments.push(Segment {
            locator: serde_json::to_string(&bucket).expect("a bucket serialises"),
            name: bucket.name(),
            tier: Tier::Hot,
            start_ms,
            end_ms: bucket.end_ms,
            rows: Some(count as u64),
            bytes: (count as f64 * per_row).round() as u64,
            labels,
            token: ChangeToken([count as u64, 0]),
        });
    }
    if untimed > 0 {
        skipped.push(Skipped {
            name: format!("{untimed} rows with a NULL {}", b.time_column),
            reason: "a row without a time is in no bucket and never touched".into(),
        });
    }
    segments.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    Ok(Scan { segments, skipped })
}

/// The bucket's rows as a `WHERE` condition over parameters `$1` (start), `$2` (end) and one per label column.
fn condition(b: &Buckets, bucket: &BucketRef) -> String {
    let mut cond = format!(
        "{0} >= $1::timestamptz AND {0} < $2::timestamptz",
        ident(&b.time_column)
    );
    for (i, (col, _)) in bucket.labels.iter().enumerate() {
        cond.push_str(&format!(
            " AND {}::text IS NOT DISTINCT FROM ${}::text",
            ident(col),
            i + 3
        ));
    }
    cond
}

/// The parameters of [`condition`].
pub(super) struct Params {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    labels: Vec<Option<String>>,
}

impl Params {
    pub(super) fn of(bucket: &BucketRef) -> Result<Params, StoreError> {
        let at = |ms| {
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| StoreError::Refused(format!("bucket time {ms} ms is out of range")))
        };
        Ok(Params {
            start: at(bucket.start_ms)?,
            end: at(bucket.end_ms)?,
            labels: bucket.labels.iter().map(|(_, v)| v.clone()).collect(),
        })
    }

    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        let mut out: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&self.start, &self.end];
        out.extend(
            self.labels
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        out
    }

    /// [`Params::refs`] and the time a batch starts from.
    fn refs_from<'a>(&'a self, from: &'a DateTime<Utc>) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
        let mut out = self.refs();
        out.push(from);
        out
    }
}

/// The statements of a drop's batches. A batch is the bucket's next `n` rows in the time index's order, from where
/// the last batch ended (keyset batches: no batch walks again over the index entries of rows already removed): the
/// time of the (n+1)-th next row is looked up first (an index-only scan), then the n rows before it are removed by their
/// time range, which the index serves directly. Rows sharing one time beyond a batch's size are taken `n` at a time
/// by `ctid`; `n` rows or fewer left are the last batch.
struct Batches {
    /// The (n+1)-th next row's time (µs), if there are more than n.
    boundary: String,
    /// Removes the rows in `[$from, $to)`.
    window: String,
    /// Removes `n` of the rows at `$from` exactly.
    tie: String,
    /// Removes the rows from `$from` on (`n` or fewer).
    rest: String,
    /// The four, prepared once (each planned once, generically: planning a range at the edge of the index with the
    /// values at hand walks the index entries of the rows just removed, which costs more than the batch).
    prepared: Option<[tokio_postgres::Statement; 4]>,
    /// The next batch's rows are at this time or later.
    from: DateTime<Utc>,
    /// Rows removed so far.
    done: u64,
}

impl Batches {
    /// `remove(where)` is the statement removing the rows `where` selects (a `DELETE`, or a move into the trash).
    fn new(
        c: &PostgresConfig,
        b: &Buckets,
        bucket: &BucketRef,
        start: DateTime<Utc>,
        remove: impl Fn(&str) -> String,
    ) -> Batches {
        let name = table(c);
        let cond = condition(b, bucket);
        let col = ident(&b.time_column);
        let from = bucket.labels.len() + 3;
        let n = b.batch_rows;
        Batches {
            // The conversion outside: under the OFFSET it would run for each of the n rows skipped.
            boundary: format!(
                "SELECT (extract(epoch FROM t::timestamptz) * 1000000)::bigint FROM (SELECT {col} AS t FROM ONLY {name} \
                 WHERE {cond} AND {col} >= ${from}::timestamptz ORDER BY {col} OFFSET {n} LIMIT 1) n"
            ),
            window: remove(&format!(
                "{cond} AND {col} >= ${from}::timestamptz AND {col} < ${}::timestamptz",
                from + 1
            )),
            tie: remove(&format!(
                "ctid = ANY(ARRAY(SELECT ctid FROM ONLY {name} WHERE {cond} AND {col} = ${from}::timestamptz LIMIT {n}))"
            )),
            rest: remove(&format!("{cond} AND {col} >= ${from}::timestamptz")),
            prepared: None,
            from: start,
            done: 0,
        }
    }

    /// Prepares the statements on `db` (a session's: they serve the transactions after it too).
    async fn prepare<C: tokio_postgres::GenericClient + Sync>(&mut self, db: &C) -> Result<(), tokio_postgres::Error> {
        db.batch_execute("SET plan_cache_mode = force_generic_plan").await?;
        self.prepared = Some([
            db.prepare(&self.boundary).await?,
            db.prepare(&self.window).await?,
            db.prepare(&self.tie).await?,
            db.prepare(&self.rest).await?,
        ]);
        db.batch_execute("RESET plan_cache_mode").await
    }

    /// Runs the next batch on `db`; whether another may follow.
    async fn step<C: tokio_postgres::GenericClient + Sync>(
        &mut self,
        db: &C,
        params: &Params,
    ) -> Result<bool, tokio_postgres::Error> {
        if self.prepared.is_none() {
            self.prepare(db).await?;
        }
        let [boundary, window, tie, rest] = self.prepared.as_ref().expect("prepared above");
        let to = db
            .query_opt(boundary, &params.refs_from(&self.from))
            .await?
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .and_then(DateTime::from_timestamp_micros);
        match to {
            None => {
                self.done += db.execute(rest, &params.refs_from(&self.from)).await?;
                Ok(false)
            }
            Some(to) if to > self.from => {
                let mut refs = params.refs_from(&self.from);
                refs.push(&to);
                self.done += db.execute(window, &refs).await?;
                self.from = to;
                Ok(true)
            }
            Some(_) => {
                let n = db.execute(tie, &params.refs_from(&self.from)).await?;
                self.done += n;
                // None taken (another session removed them meanwhile): the next pass goes on.
                Ok(n > 0)
            }
        }
    }
}

/// The trash table of a bucket: readable, unique per dataset table and bucket within a trash schema, at most 63
/// bytes (`<table, cut>_<yyyymmddhhmm>_<hash>`).
pub(super) fn trash_table_name(c: &PostgresConfig, bucket: &BucketRef) -> String {
    let key = serde_json::to_string(&(&c.schema, &c.table, &bucket.labels)).expect("serialises");
    let hash = twox_hash::XxHash3_128::oneshot(key.as_bytes()) as u32;
    let cut: String = c
        .table
        .chars()
        .scan(0, |n, ch| {
            *n += ch.len_utf8();
            (*n <= 30).then_some(ch)
        })
        .collect();
    let start = DateTime::from_timestamp_millis(bucket.start_ms)
        .map_or_else(|| bucket.start_ms.to_string(), |t| t.format("%Y%m%d%H%M").to_string());
    format!("{cut}_{start}_{hash:08x}")
}

/// The bucket a locator names, checked against the dataset's label columns (a locator is never trusted to name
/// other columns).
pub(super) fn bucket_of(b: &Buckets, segment: &Segment) -> Result<BucketRef, StoreError> {
    let bucket: BucketRef = serde_json::from_str(&segment.locator).map_err(|e| StoreError::Changed {
        what: format!("bucket {}", segment.name),
        detail: format!("its locator is not a bucket's ({e})"),
    })?;
    let cols: Vec<&String> = bucket.labels.iter().map(|(k, _)| k).collect();
    if cols != b.label_columns.iter().collect::<Vec<_>>() || bucket.end_ms - bucket.start_ms != b.width_ms {
        return Err(StoreError::Changed {
            what: format!("bucket {}", segment.name),
            detail: "it was scanned with other label_columns or another bucket width".into(),
        });
    }
    Ok(bucket)
}

/// Checks that the bucket of `segment` holds the rows the scan counted (a plan decided on other rows is tried again
/// by the next pass).
pub(super) async fn counted(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    b: &Buckets,
    bucket: &BucketRef,
    params: &Params,
    segment: &Segment,
) -> Result<(), StoreError> {
    let name = table(c);
    let cond = condition(b, bucket);
    let rows: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM ONLY {name} WHERE {cond}"),
            &params.refs(),
        )
        .await
        .map_err(|e| backend(format!("cannot count the rows of bucket {} of {name}", segment.name), e))?
        .get(0);
    if rows as u64 != segment.token.0[0] {
        return Err(StoreError::Changed {
            what: format!("bucket {}", segment.name),
            detail: format!(
                "it holds {rows} rows now, {} when it was scanned (rows written or deleted since)",
                segment.token.0[0]
            ),
        });
    }
    Ok(())
}

/// Drops the bucket of `segment`: its rows moved into a trash table in batches, or deleted in batches with no grace.
pub(super) async fn drop_bucket(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    b: &Buckets,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let bucket = bucket_of(b, segment)?;
    let params = Params::of(&bucket)?;
    counted(client, c, b, &bucket, &params, segment).await?;
    let name = table(c);
    let grace_ms = c.trash_grace.as_millis() as i64;
    let what = || format!("cannot drop the rows of bucket {} of {name}", segment.name);
    if grace_ms == 0 {
        let mut batches = Batches::new(c, b, &bucket, params.start, |w| {
            format!("DELETE FROM ONLY {name} WHERE {w}")
        });
        loop {
            let first = batches.done == 0;
            let more = batches.step(&*client, &params).await.map_err(|e| backend(what(), e))?;
            hit(
                c,
                if first {
                    "pg-bucket:first-batch"
                } else {
                    "pg-bucket:batch"
                },
            )?;
            if !more {
                break;
            }
        }
        hit(c, "pg-bucket:moved")?;
        return Ok(Applied {
            bytes_before: segment.bytes,
            bytes_after: 0,
            trashed: false,
        });
    }
    let intent = Intent {
        kind: Kind::Drop,
        key: None,
        table: (c.schema.clone(), c.table.clone()),
        origin: (c.schema.clone(), c.table.clone()),
        parent: (c.schema.clone(), c.table.clone()),
        bound: String::new(),
        trash: true,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms + grace_ms,
        labels: labels_of(c, &bucket),
        comment: None,
        bucket: Some(bucket.clone()),
    };
    let schema = intent.trash_schema();
    let into = (schema.as_str(), trash_table_name(c, &bucket));
    move_rows(client, c, b, segment, &params, &intent, into, CRASH_POINTS).await?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: true,
    })
}

/// Moves the rows of the bucket `intent` names into table `into` (schema, name), in batches: the table is created
/// (`LIKE` the dataset's) and `intent` recorded on it in the transaction of the first batch, so an interrupted move
/// leaves no empty table, only rows moved or not. `points` are the crash points after the first batch, after each
/// later one and after the last.
#[allow(clippy::too_many_arguments)]
pub(super) async fn move_rows(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    b: &Buckets,
    segment: &Segment,
    params: &Params,
    intent: &Intent,
    (schema, into): (&str, String),
    points: &[&str],
) -> Result<(), StoreError> {
    let bucket = intent.bucket.as_ref().expect("a bucket's intent names it");
    let name = table(c);
    let what = || format!("cannot move the rows of bucket {} of {name}", segment.name);
    let target = qualified(schema, &into);
    let mut batches = Batches::new(c, b, bucket, params.start, |w| {
        format!(
            "WITH moved AS (DELETE FROM ONLY {name} WHERE {w} RETURNING *) INSERT INTO {target} SELECT * FROM moved"
        )
    });
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    // A pass at the same instant as an interrupted one (a clock set by --now, or the same millisecond) finds that
    // one's table for the bucket: it goes on filling it.
    let existing: Option<Option<String>> = tx
        .query_opt(
            "SELECT obj_description(to_regclass($1), 'pg_class') WHERE to_regclass($1) IS NOT NULL",
            &[&target],
        )
        .await
        .map_err(|e| backend(format!("cannot look up {target}"), e))?
        .map(|r| r.get(0));
    match existing {
        None => tx
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {target} (LIKE {name}); COMMENT ON TABLE {target} IS {}",
                ident(schema),
                literal(&intent.to_comment())
            ))
            .await
            .map_err(|e| backend(format!("cannot create the table {target}"), e))?,
        Some(comment) if comment.as_deref().and_then(Intent::parse).as_ref() == Some(intent) => {}
        Some(_) => {
            return Err(StoreError::Taken {
                doing: if intent.kind == Kind::Archive {
                    "archive"
                } else {
                    "drop"
                },
                name: segment.name.clone(),
                place: format!("table {target}"),
            });
        }
    }
    let mut more = batches.step(&tx, params).await.map_err(|e| backend(what(), e))?;
    if batches.done == 0 {
        // Deleted by someone else since the count: nothing to move.
        drop(tx);
        return Err(StoreError::Changed {
            what: format!("bucket {}", segment.name),
            detail: "its rows are gone".into(),
        });
    }
    tx.commit().await.map_err(|e| backend(what(), e))?;
    let rest = async {
        hit(c, points[0])?;
        while more {
            more = batches.step(&*client, params).await.map_err(|e| backend(what(), e))?;
            hit(c, points[1])?;
        }
        hit(c, points[2])
    }
    .await;
    if let Err(e) = rest {
        // A failed batch (a lock timeout) fails the action cleanly: a drop's moved rows go back into the table (the
        // bucket as it was, dropped again by a later pass); an archive's caller settles its staging table. Should the
        // move back fail too, the rows stay in the trash, restorable.
        if intent.kind == Kind::Drop
            && let Err(back) = restore(client, c, &target, &segment.name).await
        {
            tracing::warn!(
                "the rows of bucket {} moved so far stay in {target}: {back}",
                segment.name
            );
        }
        return Err(e);
    }
    Ok(())
}

/// Moves the rows of trash table `trash` (of `intent`) back into the dataset's table, in batches, and drops it.
pub(super) async fn restore(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    trash: &str,
    shown: &str,
) -> Result<(), StoreError> {
    let name = table(c);
    // The columns a row can be given: not generated ones (those the server computes again), present in both.
    let cols: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
             AND NOT a.attisdropped AND a.attgenerated = '' AND EXISTS (SELECT 1 FROM pg_attribute t \
             WHERE t.attrelid = to_regclass($2) AND t.attname = a.attname AND NOT t.attisdropped) ORDER BY a.attnum",
            &[&name, &trash],
        )
        .await
        .map_err(|e| backend(format!("cannot read the columns of {name}"), e))?
        .iter()
        .map(|r| ident(r.get::<_, &str>(0)))
        .collect();
    let cols = cols.join(", ");
    let batch = c.buckets.as_ref().map_or(10_000, |b| b.batch_rows);
    let mv = format!(
        "WITH moved AS (DELETE FROM ONLY {trash} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY {trash} LIMIT {batch})) \
         RETURNING {cols}) INSERT INTO {name} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM moved"
    );
    loop {
        let n = client.execute(&mv, &[]).await.map_err(|e| {
            let e = backend(format!("cannot move the rows of {shown} back into {name}"), e);
            match super::sql::code(&e).as_deref() {
                Some("23505") => StoreError::Refused(format!(
                    "cannot restore {shown:?}: {e}; rows written since hold the same keys (the rows restored so far \
                     are in {name}, the rest still in {trash})"
                )),
                _ => e,
            }
        })?;
        hit(c, "pg-bucket:restored-batch")?;
        if n < batch as u64 {
            break;
        }
    }
    client
        .batch_execute(&format!("DROP TABLE {trash}"))
        .await
        .map_err(|e| backend(format!("cannot drop the emptied trash table {trash}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_trash_table_name_is_short_and_differs_by_label_values() {
        let raw: super::super::RawPostgres =
            toml::from_str("url = \"postgres://h/db\"\ntable = \"a_table_with_a_name_longer_than_thirty_bytes\"")
                .unwrap();
        let c = PostgresConfig::from_raw(raw, "dataset.postgres", std::path::Path::new("/")).unwrap();
        let b = |tenant: &str| BucketRef {
            start_ms: 1_767_225_600_000,
            end_ms: 1_767_312_000_000,
            labels: vec![("tenant".into(), Some(tenant.into()))],
        };
        let (x, y) = (trash_table_name(&c, &b("acme")), trash_table_name(&c, &b("other")));
        assert_ne!(x, y);
        assert!(x.len() <= 63, "{x}");
        assert!(x.starts_with("a_table_with_a_name_longer_tha_202601010000_"), "{x}");
    }
}
