//! A TimescaleDB hypertable as a dataset: a segment per chunk (`timescaledb_information.chunks`), its time range
//! from the chunk's dimension slice, its bytes from `chunks_detailed_size` (a compressed chunk's
//! `pg_total_relation_size` is only its emptied heap), tier compressed when TimescaleDB has compressed it.
//!
//! **compress** is TimescaleDB's own `compress_chunk`, one transaction of the server's: the chunk's rows are in its
//! heap or in its compressed chunk, never both or neither, whenever the process dies. It needs compression enabled on
//! the hypertable (`ALTER TABLE ... SET (timescaledb.compress)`); without it the capability says so.
//!
//! **drop** (with `trash_grace_secs = 0`) is `drop_chunks` over exactly the chunk's range, one transaction too; only
//! hypertables partitioned by time alone are taken, so that a range names one chunk. Dropping a chunk into a trash
//! and archiving one are not supported yet: the capabilities refuse them, saying why.

use chrono::{DateTime, Utc};

use crate::crashpoint;
use crate::segment::{ChangeToken, Labels, Segment, Symbols, Tier};
use crate::store::{Applied, Scan, StoreError};

use super::sql::qualified;
use super::{PostgresConfig, backend};

/// The failure points of compress and drop, after the server's transaction (names for [`crate::crashpoint`]).
pub const CRASH_POINTS: &[&str] = &["pg-chunk:compressed", "pg-chunk:dropped"];

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
            name: chunk,
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
async fn check(client: &tokio_postgres::Client, c: &PostgresConfig, segment: &Segment) -> Result<(), StoreError> {
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
            "SELECT total_bytes::bigint FROM chunks_detailed_size(to_regclass($1)) WHERE chunk_name = $2",
            &[&qualified(&c.schema, &c.table), &segment.name],
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
