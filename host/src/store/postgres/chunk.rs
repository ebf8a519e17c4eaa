//! A TimescaleDB hypertable as a dataset: a segment per chunk (`timescaledb_information.chunks`), its time range
//! from the chunk's dimension slice, its bytes from `chunks_detailed_size` (a compressed chunk's
//! `pg_total_relation_size` is only its emptied heap), tier compressed when TimescaleDB has compressed it.
//!
//! **compress** is TimescaleDB's own `compress_chunk`, one transaction of the server's: the chunk's rows are in its
//! heap or in its compressed chunk, never both or neither, whenever the process dies. It needs compression enabled on
//! the hypertable (`ALTER TABLE ... SET (timescaledb.compress)`); without it the capability says so.
//!
//! **drop** with `trash_grace_secs = 0` is `drop_chunks` over exactly the chunk's range, one transaction too; only
//! hypertables partitioned by time alone are taken, so that a range names one chunk. With a grace period the chunk
//! goes into the trash as a partition does: its [`Intent`] recorded on it first (the slice it covers as `bound`,
//! `{"<column>": [start, end]}`), then in one transaction `detach_chunk` and the move into the trash schema; a restore
//! moves it back and `attach_chunk`s it with its slice. TimescaleDB detaches only uncompressed chunks: a compressed
//! one is decompressed first, in the same transaction. A chunk's archive is `chunk_archive.rs`.

use chrono::{DateTime, Utc};

use crate::crashpoint;
use crate::segment::{ChangeToken, Labels, Segment, Symbols, Tier};
use crate::store::{Applied, Scan, StoreError};

use super::intent::{Intent, Kind, shown};
use super::sql::{code, exec, ident, literal, qualified};
use super::{PostgresConfig, backend};

/// The failure points of compress and of a drop for good, after the server's transaction (names for
/// [`crate::crashpoint`]).
pub const CRASH_POINTS: &[&str] = &["pg-chunk:compressed", "pg-chunk:dropped"];

/// The failure points of a drop into the trash, in protocol order.
pub const TRASH_CRASH_POINTS: &[&str] = &["pg-chunk:intent-recorded", "pg-chunk:trashed"];

fn hit(c: &PostgresConfig, point: &str) -> Result<(), StoreError> {
    crashpoint::hit_for(point, &c.scope).map_err(|e| StoreError::io("crash point", point, e))
}

/// What the store needs to know of a hypertable.
#[derive(Debug, Clone)]
pub struct Hypertable {
    /// Whether compression is enabled on it (`compress_chunk` works).
    pub compression: bool,
    /// Its time column's type, as `format_type` prints it (the type `drop_chunks`'s bounds are given in).
    pub time_type: String,
}

/// The hypertable the dataset's table is, if it is one (and the timescaledb extension is installed); refused when
/// it is not partitioned by one time column alone.
pub(super) async fn hypertable(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
) -> Result<Option<Hypertable>, StoreError> {
    let name = qualified(&c.schema, &c.table);
    let installed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            &[],
        )
        .await
        .map_err(|e| backend("cannot look for timescaledb", e))?
        .get(0);
    if !installed {
        return Ok(None);
    }
    let Some(row) = client
        .query_opt(
            "SELECT h.compression_enabled, h.num_dimensions::bigint, \
                    (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                     WHERE a.attrelid = to_regclass($3) AND a.attname = d.column_name), d.column_name::text \
             FROM timescaledb_information.hypertables h \
             LEFT JOIN timescaledb_information.dimensions d ON d.hypertable_schema = h.hypertable_schema \
               AND d.hypertable_name = h.hypertable_name AND d.dimension_number = 1 \
             WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2",
            &[&c.schema, &c.table, &name],
        )
        .await
        .map_err(|e| backend(format!("cannot read the hypertable {name}"), e))?
    else {
        return Ok(None);
    };
    let (compression, dims, time_type, column): (bool, i64, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let time_type = time_type.unwrap_or_default();
    let time_typed = ["timestamp with time zone", "timestamp without time zone", "date"].contains(&time_type.as_str())
        || time_type.starts_with("timestamp(");
    if dims != 1 || !time_typed {
        return Err(StoreError::Refused(format!(
            "hypertable {name} is partitioned {}: only hypertables partitioned by one timestamp or date column are \
             supported (a chunk is then one time range)",
            if dims != 1 {
                format!("on {dims} dimensions")
            } else {
                format!("by {} ({time_type})", column.as_deref().unwrap_or("?"))
            }
        )));
    }
    Ok(Some(Hypertable { compression, time_type }))
}

/// Every chunk of the hypertable: a segment, oldest first.
pub(super) async fn scan(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    symbols: &mut Symbols,
) -> Result<Scan, StoreError> {
    let name = qualified(&c.schema, &c.table);
    let rows = client
        .query(
            "SELECT ch.chunk_schema::text, ch.chunk_name::text, k.oid::bigint, k.relfilenode::bigint, \
                    k.reltuples::float8, ch.is_compressed, \
                    (extract(epoch FROM ch.range_start) * 1000)::bigint, (extract(epoch FROM ch.range_end) * 1000)::bigint, \
                    coalesce(s.total_bytes, 0)::bigint \
             FROM timescaledb_information.chunks ch \
             JOIN pg_class k ON k.oid = to_regclass(format('%I.%I', ch.chunk_schema, ch.chunk_name)) \
             LEFT JOIN chunks_detailed_size(to_regclass($3)) s \
               ON s.chunk_schema = ch.chunk_schema AND s.chunk_name = ch.chunk_name \
             WHERE ch.hypertable_schema = $1 AND ch.hypertable_name = $2",
            &[&c.schema, &c.table, &name],
        )
        .await
        .map_err(|e| backend(format!("cannot list the chunks of {name}"), e))?;
    let mut segments = Vec::with_capacity(rows.len());
    for row in rows {
        let (schema, chunk): (String, String) = (row.get(0), row.get(1));
        let compressed: bool = row.get(5);
        let mut labels: Labels = super::drop::labels_of(c, &c.schema, &chunk)
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        let estimate: f64 = row.get(4);
        segments.push(Segment {
            locator: qualified(&schema, &chunk),
            name: shown(&c.schema, &schema, &chunk),
            tier: if compressed { Tier::Compressed } else { Tier::Hot },
            start_ms: row.get(6),
            end_ms: row.get(7),
            // A compressed chunk's heap is empty: its rows are not estimated.
            rows: (!compressed && estimate >= 0.0).then_some(estimate as u64),
            bytes: row.get::<_, i64>(8).max(0) as u64,
            labels,
            token: ChangeToken([row.get::<_, i64>(2) as u64, row.get::<_, i64>(3) as u64]),
        });
    }
    segments.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    Ok(Scan {
        segments,
        skipped: Vec::new(),
    })
}

/// The chunk `segment` names, checked to be what the scan saw: still a chunk of the hypertable, the same oid and
/// relfilenode (a recompress, `TRUNCATE` or rewrite gives a new one), the same compression.
pub(super) async fn check(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
) -> Result<(), StoreError> {
    let changed = |detail: String| StoreError::Changed {
        what: format!("chunk {}", segment.name),
        detail,
    };
    let row = client
        .query_opt(
            "SELECT k.oid::bigint, k.relfilenode::bigint, ch.is_compressed FROM timescaledb_information.chunks ch \
             JOIN pg_class k ON k.oid = to_regclass(format('%I.%I', ch.chunk_schema, ch.chunk_name)) \
             WHERE ch.hypertable_schema = $1 AND ch.hypertable_name = $2 AND k.oid = to_regclass($3)",
            &[&c.schema, &c.table, &segment.locator],
        )
        .await
        .map_err(|e| backend(format!("cannot look up chunk {}", segment.name), e))?;
    let Some(row) = row else {
        return Err(changed("it is no longer a chunk of the hypertable".into()));
    };
    let (oid, node, compressed): (i64, i64, bool) = (row.get(0), row.get(1), row.get(2));
    if [oid as u64, node as u64] != segment.token.0 || compressed != (segment.tier == Tier::Compressed) {
        return Err(changed(
            "it was rewritten, compressed or decompressed since the scan".into(),
        ));
    }
    Ok(())
}

/// The chunk's bytes now, as `chunks_detailed_size` counts them.
async fn bytes_of(client: &tokio_postgres::Client, c: &PostgresConfig, segment: &Segment) -> u64 {
    client
        .query_opt(
            "SELECT total_bytes::bigint FROM chunks_detailed_size(to_regclass($1)) \
             WHERE to_regclass(format('%I.%I', chunk_schema, chunk_name)) = to_regclass($2)",
            &[&qualified(&c.schema, &c.table), &segment.locator],
        )
        .await
        .ok()
        .flatten()
        .map_or(0, |r| r.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64)
}

/// Compresses the chunk with TimescaleDB's `compress_chunk`.
pub(super) async fn compress(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
) -> Result<Applied, StoreError> {
    check(client, c, segment).await?;
    client
        .execute("SELECT compress_chunk(to_regclass($1))", &[&segment.locator])
        .await
        .map_err(|e| backend(format!("cannot compress chunk {}", segment.name), e))?;
    hit(c, "pg-chunk:compressed")?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: bytes_of(client, c, segment).await,
        trashed: false,
    })
}

/// Drops the chunk for good with `drop_chunks` over exactly its range.
pub(super) async fn drop_chunk(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    h: &Hypertable,
    segment: &Segment,
) -> Result<Applied, StoreError> {
    check(client, c, segment).await?;
    let at = |ms| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .ok_or_else(|| StoreError::Refused(format!("chunk time {ms} ms is out of range")))
    };
    let (start, end) = (at(segment.start_ms)?, at(segment.end_ms)?);
    // The bounds in the time column's type (checked to be a timestamp or date type, from the catalog).
    let sql = format!(
        "SELECT count(*) FROM drop_chunks(to_regclass($1), older_than => $2::timestamptz::{0}, \
         newer_than => $3::timestamptz::{0})",
        h.time_type
    );
    let dropped: i64 = client
        .query_one(&sql, &[&qualified(&c.schema, &c.table), &end, &start])
        .await
        .map_err(|e| backend(format!("cannot drop chunk {}", segment.name), e))?
        .get(0);
    if dropped != 1 {
        tracing::warn!(
            "drop_chunks over the range of {} dropped {dropped} chunks",
            segment.name
        );
    }
    hit(c, "pg-chunk:dropped")?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: false,
    })
}

/// Drops the chunk into the trash: the intent recorded on it, then (`decompress_chunk` of a compressed one,)
/// `detach_chunk` and the move into the trash schema in one transaction (so the chunk is attached carrying its
/// intent, which recovery clears, or in the trash).
pub(super) async fn trash_chunk(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    check(client, c, segment).await?;
    let (schema, name, comment, bound) = slice(client, c, segment).await?;
    let grace_ms = c.trash_grace.as_millis() as i64;
    let intent = Intent {
        kind: Kind::Drop,
        key: None,
        table: (c.schema.clone(), c.table.clone()),
        origin: (schema.clone(), name.clone()),
        parent: (c.schema.clone(), c.table.clone()),
        bound,
        trash: true,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms + grace_ms,
        labels: super::drop::labels_of(c, &c.schema, &name),
        comment,
        bucket: None,
    };
    let here = qualified(&schema, &name);
    exec(
        client,
        || format!("cannot record the intent to drop {here}"),
        &format!("COMMENT ON TABLE {here} IS {}", literal(&intent.to_comment())),
    )
    .await?;
    hit(c, "pg-chunk:intent-recorded")?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    // TimescaleDB detaches only uncompressed chunks: a compressed one is decompressed first, in the same transaction
    // (its rows are in its compressed chunk or in its heap, never both or neither; a restore attaches it
    // uncompressed, and a later pass may compress it again).
    let decompressed = if segment.tier == Tier::Compressed {
        tx.execute("SELECT decompress_chunk($1::text::regclass)", &[&here])
            .await
            .map(|_| ())
            .map_err(|e| backend(format!("cannot decompress chunk {here} to detach it"), e))
    } else {
        Ok(())
    };
    let detached = match decompressed {
        Ok(()) => tx
            .execute("CALL detach_chunk($1::text::regclass)", &[&here])
            .await
            .map_err(|e| backend(format!("cannot detach chunk {here}"), e)),
        Err(e) => Err(e),
    };
    let moved = match detached {
        Ok(_) => super::drop::finish_in(&tx, &schema, &name, &intent).await,
        Err(e) => Err(e),
    };
    if let Err(e) = moved {
        drop(tx);
        super::drop::clear_intent(client, &here, &intent).await;
        return Err(e);
    }
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the drop of {here}"), e))?;
    hit(c, "pg-chunk:trashed")?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: true,
    })
}

/// The chunk's schema, name and comment, and the slice it covers as an intent's `bound` (`{"<column>": [start,
/// end]}`, the server's text of each).
pub(super) async fn slice(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
) -> Result<(String, String, Option<String>, String), StoreError> {
    let row = client
        .query_one(
            "SELECT ch.chunk_schema::text, ch.chunk_name::text, obj_description(to_regclass($3), 'pg_class'), \
                    ch.range_start::text, ch.range_end::text, d.column_name::text \
             FROM timescaledb_information.chunks ch \
             JOIN timescaledb_information.dimensions d ON d.hypertable_schema = ch.hypertable_schema \
               AND d.hypertable_name = ch.hypertable_name AND d.dimension_number = 1 \
             WHERE ch.hypertable_schema = $1 AND ch.hypertable_name = $2 \
               AND to_regclass(format('%I.%I', ch.chunk_schema, ch.chunk_name)) = to_regclass($3)",
            &[&c.schema, &c.table, &segment.locator],
        )
        .await
        .map_err(|e| backend(format!("cannot look up chunk {}", segment.name), e))?;
    let (schema, name, comment, start, end, column): (String, String, Option<String>, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    Ok((
        schema,
        name,
        comment,
        serde_json::json!({ column: [start, end] }).to_string(),
    ))
}

/// Puts a trashed chunk (`schema.name` now) back: moved into its schema and attached to the hypertable with the slice
/// its intent records, in one transaction (refused when a chunk now covers that range).
pub(super) async fn restore(
    client: &mut tokio_postgres::Client,
    schema: &str,
    name: &str,
    intent: &Intent,
) -> Result<(), StoreError> {
    let shown = intent.shown();
    // The slice goes to attach_chunk as a parameter; it must be one column's [start, end] (a comment is the table
    // owner's to change).
    let slice: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&intent.bound)
        .ok()
        .filter(|m: &serde_json::Map<String, serde_json::Value>| {
            m.len() == 1
                && m.values().all(|v| {
                    v.as_array()
                        .is_some_and(|a| a.len() == 2 && a.iter().all(serde_json::Value::is_string))
                })
        })
        .ok_or_else(|| {
            StoreError::Refused(format!(
                "cannot restore {shown:?}: the slice its comment records ({:?}) is not a chunk's",
                intent.bound
            ))
        })?;
    let (to_schema, to_name) = &intent.origin;
    let target = qualified(to_schema, to_name);
    super::sql::free_for_restore(client, &target, &shown).await?;
    let hypertable = qualified(&intent.parent.0, &intent.parent.1);
    // A chunk written since over the same range (rows of that time inserted anew) holds its place.
    let (start, end) = slice
        .values()
        .next()
        .and_then(|v| Some((v[0].as_str()?.to_string(), v[1].as_str()?.to_string())))
        .expect("checked above");
    let covering: Option<String> = client
        .query_opt(
            "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks \
             WHERE hypertable_schema = $1 AND hypertable_name = $2 \
               AND range_start < $3::text::timestamptz AND range_end > $4::text::timestamptz LIMIT 1",
            &[&intent.parent.0, &intent.parent.1, &end, &start],
        )
        .await
        .map_err(|e| backend(format!("cannot list the chunks of {hypertable}"), e))?
        .map(|r| r.get(0));
    if let Some(chunk) = covering {
        return Err(StoreError::Taken {
            doing: "restore",
            name: shown,
            place: format!("chunk {chunk} of {hypertable}, which covers its range now"),
        });
    }
    let old = intent.comment.as_deref().map_or("NULL".to_string(), literal);
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    let mut current = qualified(schema, name);
    if name != to_name {
        tx.batch_execute(&format!("ALTER TABLE {current} RENAME TO {}", ident(to_name)))
            .await
            .map_err(|e| backend(format!("cannot rename {current}"), e))?;
        current = qualified(schema, to_name);
    }
    tx.batch_execute(&format!("ALTER TABLE {current} SET SCHEMA {}", ident(to_schema)))
        .await
        .map_err(|e| backend(format!("cannot move {current} back into {to_schema}"), e))?;
    tx.execute(
        "CALL attach_chunk($1::text::regclass, $2::text::regclass, $3::text::jsonb)",
        &[&hypertable, &target, &serde_json::Value::Object(slice).to_string()],
    )
    .await
    .map_err(|e| {
        let e = backend(format!("cannot attach {target} to {hypertable} again"), e);
        match code(&e).as_deref() {
            Some(_) => StoreError::Refused(format!(
                "cannot restore {shown:?}: {e}; the hypertable may now have a chunk covering its range: move its \
                 rows away first"
            )),
            None => e,
        }
    })?;
    tx.batch_execute(&format!("COMMENT ON TABLE {target} IS {old}"))
        .await
        .map_err(|e| backend(format!("cannot clear the intent of {target}"), e))?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the restore of {target}"), e))
}
