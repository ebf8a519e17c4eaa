//! A partition's rows as Parquet, and back: which column types an archive holds and how (checked before anything is
//! written), reading the rows by binary `COPY` into Arrow record batches written by `parquet`'s `ArrowWriter` (zstd,
//! row groups of [`BATCH_ROWS`] rows, so memory stays bounded whatever the partition's size), an order-independent
//! digest of the rows (which recovery recomputes from the table to tell whether a verified object still holds
//! exactly the table's rows), and the Parquet's rows as CSV for `COPY ... FROM STDIN` on a restore.
//!
//! Types (the table's, as `format_type` prints them, are kept in the manifest and a restore casts back to them):
//!
//! | PostgreSQL | Parquet (Arrow) |
//! |---|---|
//! | `boolean` | BOOLEAN |
//! | `smallint`, `integer`, `bigint` | INT16, INT32, INT64 |
//! | `real`, `double precision` | FLOAT, DOUBLE |
//! | `text`, `varchar`, `char(n)`, `name`, `citext` | UTF8 string |
//! | `bytea` | BINARY |
//! | `timestamptz` | TIMESTAMP(MICROS, UTC) |
//! | `timestamp` | TIMESTAMP(MICROS) |
//! | `date` | DATE32 |
//! | `numeric`, `uuid`, `json`, `jsonb`, `interval`, `time`, `timetz`, `inet`, `cidr`, `macaddr`, `macaddr8`, `xml`, `bit`, `varbit`, enums | UTF8, the server's own text form (exact: the type's input reads it back) |
//!
//! Anything else (arrays, composite and range types, `money`, geometric and full-text types, domains) is refused.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;

use crate::store::StoreError;

use super::backend;
use super::sql::ident;

/// Rows per record batch and per Parquet row group.
pub const BATCH_ROWS: usize = 65_536;

/// How a column is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// A string: text types, and the types carried in their text form.
    Text,
    Bytes,
    Timestamptz,
    Timestamp,
    Date,
}

/// A column of the table, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The type as `format_type` prints it (`timestamp with time zone`, `numeric(10,2)`).
    pub pg_type: String,
    pub kind: Kind,
    /// Read as `::text` (types carried in their text form).
    pub as_text: bool,
    /// A generated column: archived, but not written on a restore (the server computes it).
    #[serde(default)]
    pub generated: bool,
}

impl Kind {
    fn arrow(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::I16 => DataType::Int16,
            Kind::I32 => DataType::Int32,
            Kind::I64 => DataType::Int64,
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::Text => DataType::Utf8,
            Kind::Bytes => DataType::Binary,
            Kind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Date => DataType::Date32,
        }
    }

    fn pg(self) -> Type {
        match self {
            Kind::Bool => Type::BOOL,
            Kind::I16 => Type::INT2,
            Kind::I32 => Type::INT4,
            Kind::I64 => Type::INT8,
            Kind::F32 => Type::FLOAT4,
            Kind::F64 => Type::FLOAT8,
            Kind::Text => Type::TEXT,
            Kind::Bytes => Type::BYTEA,
            Kind::Timestamptz => Type::TIMESTAMPTZ,
            Kind::Timestamp => Type::TIMESTAMP,
            Kind::Date => Type::DATE,
        }
    }
}

/// The columns of table `oid`, or an error naming every column an archive cannot hold.
pub async fn columns(client: &tokio_postgres::Client, oid: u32, table: &str) -> Result<Vec<Column>, StoreError> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, t.typtype::text, \
                    a.attgenerated::text <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| backend(format!("cannot read the columns of {table}"), e))?;
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for r in rows {
        let (name, pg_type, typname, typtype, generated): (String, String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let (kind, as_text) = match typname.as_str() {
            "bool" => (Kind::Bool, false),
            "int2" => (Kind::I16, false),
            "int4" => (Kind::I32, false),
            "int8" => (Kind::I64, false),
            "float4" => (Kind::F32, false),
            "float8" => (Kind::F64, false),
            "text" => (Kind::Text, false),
            "varchar" | "bpchar" | "name" | "citext" => (Kind::Text, true),
            "bytea" => (Kind::Bytes, false),
            "timestamptz" => (Kind::Timestamptz, false),
            "timestamp" => (Kind::Timestamp, false),
            "date" => (Kind::Date, false),
            "numeric" | "uuid" | "json" | "jsonb" | "interval" | "time" | "timetz" | "inet" | "cidr" | "macaddr"
            | "macaddr8" | "xml" | "bit" | "varbit" => (Kind::Text, true),
            _ if typtype == "e" => (Kind::Text, true),
            _ => {
                refused.push(format!("{name} ({pg_type})"));
                continue;
            }
        };
        out.push(Column {
            name,
            pg_type,
            kind,
            as_text,
            generated,
        });
    }
    if !refused.is_empty() {
        return Err(StoreError::Refused(format!(
            "cannot archive {table} as Parquet: column {} has a type the archive does not hold (supported: boolean, \
             integers, real and double precision, text types, bytea, timestamps, date, and in their text form numeric, \
             uuid, json, jsonb, interval, time, inet, cidr, macaddr, xml, bit and enums); nothing was written: drop \
             or keep this table's partitions instead, or change the column's type",
            refused.join(", ")
        )));
    }
    Ok(out)
}

/// The Arrow schema of `cols`, each field carrying its PostgreSQL type as metadata (`pg_type`).
pub fn schema(cols: &[Column]) -> Arc<Schema> {
    Arc::new(Schema::new(
        cols.iter()
            .map(|c| {
                Field::new(&c.name, c.kind.arrow(), true)
                    .with_metadata([("pg_type".to_string(), c.pg_type.clone())].into_iter().collect())
            })
            .collect::<Vec<_>>(),
    ))
}

/// The writer properties of every archive: zstd level 1, row groups of [`BATCH_ROWS`].
pub fn properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_size(BATCH_ROWS)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .build()
}

/// What reading a table's rows gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub rows: u64,
    /// Order-independent: the wrapping sum of the 128-bit XXH3 of each row's values (tagged, length-prefixed).
    pub digest: u128,
}

impl Read {
    pub fn digest_hex(&self) -> String {
        format!("{:032x}", self.digest)
    }
}

enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Ts(TimestampMicrosecondBuilder, bool),
    Date(Date32Builder),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        let n = BATCH_ROWS;
        match kind {
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            Kind::I16 => Builder::I16(Int16Builder::with_capacity(n)),
            Kind::I32 => Builder::I32(Int32Builder::with_capacity(n)),
            Kind::I64 => Builder::I64(Int64Builder::with_capacity(n)),
            Kind::F32 => Builder::F32(Float32Builder::with_capacity(n)),
            Kind::F64 => Builder::F64(Float64Builder::with_capacity(n)),
            Kind::Text => Builder::Text(StringBuilder::new()),
            Kind::Bytes => Builder::Bytes(BinaryBuilder::new()),
            Kind::Timestamptz => Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n), true),
            Kind::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n), false),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(n)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
            Builder::Ts(b, true) => Arc::new(b.finish().with_timezone("UTC")),
            Builder::Ts(b, false) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
        }
    }
}

/// Appends one value to a row's canonical bytes: a tag (null or not) and the value's bytes, length-prefixed.
fn feed(h: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => h.push(0),
        Some(b) => {
            h.push(1);
            h.extend_from_slice(&(b.len() as u64).to_le_bytes());
            h.extend_from_slice(b);
        }
    }
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");

/// Reads every row of `table` (quoted) in one statement of `client`'s current transaction, digesting them and, with
/// `out`, sending them in record batches of [`BATCH_ROWS`] rows (to a [`Writer`] encoding them on a thread of its
/// own meanwhile).
pub async fn read(
    client: &tokio_postgres::Transaction<'_>,
    cols: &[Column],
    table: &str,
    out: Option<&tokio::sync::mpsc::Sender<RecordBatch>>,
) -> Result<Read, StoreError> {
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_text {
            true => format!("{}::text", ident(&c.name)),
            false => ident(&c.name),
        })
        .collect();
    let sql = format!(
        "COPY (SELECT {} FROM {table}) TO STDOUT (FORMAT binary)",
        select.join(", ")
    );
    let types: Vec<Type> = cols.iter().map(|c| c.kind.pg()).collect();
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| backend(format!("cannot read the rows of {table}"), e))?;
    let rows = BinaryCopyOutStream::new(stream, &types);
    let mut rows = std::pin::pin!(rows);
    let schema = schema(cols);
    let mut builders: Vec<Builder> = cols.iter().map(|c| Builder::new(c.kind)).collect();
    let mut in_batch = 0usize;
    let mut read = Read { rows: 0, digest: 0 };
    let bad = |c: &Column, e: tokio_postgres::Error| backend(format!("cannot read column {} of {table}", c.name), e);
    let batch_err = |e: arrow_schema::ArrowError| StoreError::Backend {
        what: format!("cannot make a record batch of {table}"),
        source: Box::new(e),
    };
    let gone = || StoreError::Refused(format!("the Parquet writer of {table} stopped (see its error)"));
    let mut canonical = Vec::with_capacity(256);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| backend(format!("cannot read the rows of {table}"), e))?;
        canonical.clear();
        let h = &mut canonical;
        for (i, (c, b)) in cols.iter().zip(builders.iter_mut()).enumerate() {
            match b {
                Builder::Bool(b) => {
                    let v: Option<bool> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(|v| [v as u8]).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::I16(b) => {
                    let v: Option<i16> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(i16::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::I32(b) => {
                    let v: Option<i32> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(i32::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::I64(b) => {
                    let v: Option<i64> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(i64::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::F32(b) => {
                    let v: Option<f32> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(f32::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::F64(b) => {
                    let v: Option<f64> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(f64::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::Text(b) => {
                    let v: Option<&str> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v.map(str::as_bytes));
                    b.append_option(v);
                }
                Builder::Bytes(b) => {
                    let v: Option<&[u8]> = row.try_get(i).map_err(|e| bad(c, e))?;
                    feed(h, v);
                    b.append_option(v);
                }
                Builder::Ts(b, tz) => {
                    let v: Option<i64> = if *tz {
                        let t: Option<DateTime<Utc>> = row.try_get(i).map_err(|e| bad(c, e))?;
                        t.map(|t| t.timestamp_micros())
                    } else {
                        let t: Option<NaiveDateTime> = row.try_get(i).map_err(|e| bad(c, e))?;
                        t.map(|t| t.and_utc().timestamp_micros())
                    };
                    feed(h, v.map(i64::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
                Builder::Date(b) => {
                    let d: Option<NaiveDate> = row.try_get(i).map_err(|e| bad(c, e))?;
                    let v = d.map(|d| (d - EPOCH).num_days() as i32);
                    feed(h, v.map(i32::to_le_bytes).as_ref().map(|a| &a[..]));
                    b.append_option(v);
                }
            }
        }
        read.digest = read.digest.wrapping_add(twox_hash::XxHash3_128::oneshot(&canonical));
        read.rows += 1;
        in_batch += 1;
        if in_batch == BATCH_ROWS {
            if let Some(w) = out {
                let batch = RecordBatch::try_new(schema.clone(), builders.iter_mut().map(Builder::finish).collect())
                    .map_err(batch_err)?;
                w.send(batch).await.map_err(|_| gone())?;
            } else {
                builders = cols.iter().map(|c| Builder::new(c.kind)).collect();
            }
            in_batch = 0;
        }
    }
    if let Some(w) = out
        && in_batch > 0
    {
        let batch = RecordBatch::try_new(schema.clone(), builders.iter_mut().map(Builder::finish).collect())
            .map_err(batch_err)?;
        w.send(batch).await.map_err(|_| gone())?;
    }
    Ok(read)
}

/// A file written through it: its size and SHA-256, computed on the way; its pages are handed to writeback as they
/// fill ([`WRITEBACK`]), so that the fsync that makes it durable before any row is dropped waits for little.
struct Hashing {
    file: std::fs::File,
    sha: sha2::Sha256,
    size: u64,
    kicked: u64,
}

/// Bytes written between two starts of writeback.
const WRITEBACK: u64 = 8 << 20;

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        if self.size - self.kicked >= WRITEBACK {
            // Starts writing the range out without waiting for it (SYNC_FILE_RANGE_WRITE): only a hint, so a failure
            // is ignored; durability comes from the fsync at the end.
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor and a range within the file; the call only schedules writeback.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.kicked as i64,
                    (self.size - self.kicked) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.kicked = self.size;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A Parquet file being written by a thread of its own from the record batches sent to it, so that encoding and
/// compressing overlap with reading the next rows from the server.
pub struct Writer {
    pub batches: tokio::sync::mpsc::Sender<RecordBatch>,
    thread: std::thread::JoinHandle<Result<(u64, crate::store::object::Content), String>>,
}

impl Writer {
    /// Starts writing `cols`' rows to `file` (created, empty).
    pub fn start(file: std::fs::File, cols: &[Column]) -> Result<Writer, StoreError> {
        let (batches, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let inner = Hashing {
            file,
            sha: <sha2::Sha256 as sha2::Digest>::new(),
            size: 0,
            kicked: 0,
        };
        let mut w = ArrowWriter::try_new(
            std::io::BufWriter::with_capacity(1 << 20, inner),
            schema(cols),
            Some(properties()),
        )
        .map_err(|e| StoreError::Backend {
            what: "cannot start a Parquet file".into(),
            source: Box::new(e),
        })?;
        let thread = std::thread::Builder::new()
            .name("retention-parquet".into())
            .spawn(move || {
                while let Some(batch) = rx.blocking_recv() {
                    w.write(&batch).map_err(|e| e.to_string())?;
                }
                let meta = w.finish().map_err(|e| e.to_string())?;
                let buffered = w.inner_mut();
                buffered
                    .flush()
                    .map_err(|e| format!("cannot write the Parquet file: {e}"))?;
                let h = buffered.get_mut();
                h.file
                    .sync_all()
                    .map_err(|e| format!("cannot sync the Parquet file: {e}"))?;
                let sha = std::mem::replace(&mut h.sha, <sha2::Sha256 as sha2::Digest>::new());
                let content = crate::store::object::Content {
                    size: h.size,
                    sha256: sha2::Digest::finalize(sha).into(),
                };
                Ok((meta.num_rows as u64, content))
            })
            .map_err(|e| StoreError::io("cannot start a thread", "parquet", e))?;
        Ok(Writer { batches, thread })
    }

    /// Waits for the file to be complete and durable: its row count, size and SHA-256.
    pub async fn finish(self) -> Result<(u64, crate::store::object::Content), StoreError> {
        drop(self.batches);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| StoreError::Refused(format!("the Parquet writer failed: {e}")))?
            .map_err(|_| StoreError::Refused("the Parquet writer panicked".into()))?
            .map_err(|e| StoreError::Refused(format!("cannot write the Parquet file: {e}")))
    }
}

/// Appends `v` to a CSV line, quoted (`"` doubled), or nothing for NULL.
fn quoted(line: &mut Vec<u8>, v: &str) {
    line.push(b'"');
    for b in v.bytes() {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{v}")
    }
}

/// The value at `row` of column `c` (array `a`) in its type's text form, which the server's input reads back
/// exactly; `None` for NULL.
fn text(c: &Column, a: &ArrayRef, row: usize) -> Result<Option<String>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };
    if a.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match c.kind {
        Kind::Bool => (if a.as_boolean().value(row) { "t" } else { "f" }).to_string(),
        Kind::I16 => a.as_primitive::<Int16Type>().value(row).to_string(),
        Kind::I32 => a.as_primitive::<Int32Type>().value(row).to_string(),
        Kind::I64 => a.as_primitive::<Int64Type>().value(row).to_string(),
        Kind::F32 => {
            let v = a.as_primitive::<Float32Type>().value(row);
            if v.is_finite() { format!("{v}") } else { float(v as f64) }
        }
        Kind::F64 => float(a.as_primitive::<Float64Type>().value(row)),
        Kind::Text => a.as_string::<i32>().value(row).to_string(),
        Kind::Bytes => format!("\\x{}", hex::encode(a.as_binary::<i32>().value(row))),
        Kind::Timestamptz | Kind::Timestamp => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = DateTime::from_timestamp_micros(us)
                .ok_or_else(|| format!("column {}: timestamp {us} µs is out of range", c.name))?;
            let tz = if c.kind == Kind::Timestamptz { "+00" } else { "" };
            format!("{}{tz}", t.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
        Kind::Date => {
            let days = a.as_primitive::<Date32Type>().value(row);
            let d = EPOCH
                .checked_add_signed(chrono::TimeDelta::days(days as i64))
                .ok_or_else(|| format!("column {}: date {days} is out of range", c.name))?;
            d.format("%Y-%m-%d").to_string()
        }
    }))
}

/// The rows of `batch` as CSV lines for `COPY ... FROM STDIN (FORMAT csv)`, the columns in `cols`' order without
/// the generated ones: every value in its type's text form, so the server's input reads it back exactly.
pub fn csv(batch: &RecordBatch, cols: &[Column]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batch.num_rows() * 64);
    let arrays: Vec<(&Column, &ArrayRef)> = cols.iter().zip(batch.columns()).filter(|(c, _)| !c.generated).collect();
    for row in 0..batch.num_rows() {
        for (n, (c, a)) in arrays.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            if let Some(text) = text(c, a, row)? {
                quoted(&mut out, &text);
            }
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The rows of `batch` as a JSON array of objects, a column's value its text form (or null), the generated columns
/// left out: for `json_populate_recordset`, where `COPY ... FROM` is not to be had (TimescaleDB's WebAssembly build).
pub fn json_rows(batch: &RecordBatch, cols: &[Column]) -> Result<String, String> {
    let arrays: Vec<(&Column, &ArrayRef)> = cols.iter().zip(batch.columns()).filter(|(c, _)| !c.generated).collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut obj = serde_json::Map::with_capacity(arrays.len());
        for (c, a) in &arrays {
            obj.insert(
                c.name.clone(),
                text(c, a, row)?.map_or(serde_json::Value::Null, serde_json::Value::String),
            );
        }
        rows.push(serde_json::Value::Object(obj));
    }
    Ok(serde_json::Value::Array(rows).to_string())
}
