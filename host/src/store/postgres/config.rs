//! `[dataset.postgres]`: a table of a PostgreSQL database as a dataset. Validated once, here, into
//! [`PostgresConfig`]; the password never lives in the config file (an environment variable or a file names it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::store::FieldError;

fn invalid(field: impl Into<String>, value: impl ToString, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

fn default_lock_timeout_ms() -> u64 {
    5_000
}

fn default_statement_timeout_ms() -> u64 {
    60_000
}

/// The section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Connection URL without the password, e.g. `postgres://retention@db.internal:5432/events?sslmode=require`.
    pub url: String,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (its first line); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// The table: `schema.table`, or `table` in `public`; with `schema` set, the table's bare name (which may then
    /// hold dots).
    pub table: String,
    /// The table's schema, for names that hold a dot; `table` is then the bare name.
    pub schema: Option<String>,
    /// How the table's segments are found: `partitioned` (each leaf partition of a declarative RANGE partitioning on a
    /// time column is a segment), `hypertable` (a TimescaleDB hypertable: each chunk is a segment) or `buckets` (a
    /// plain table: each time bucket of `time_column`, per value of the `label_columns`, is a segment). Detected when
    /// absent: partitioned for a partitioned table, hypertable for a hypertable, else buckets when `time_column` is
    /// set.
    pub layout: Option<String>,
    /// Buckets: the timestamp (or date) column a row's time is.
    pub time_column: Option<String>,
    /// Buckets: their width, `"<n> minute|hour|day|week[s]"` (default `"1 day"`), aligned on 2000-01-01 00:00 UTC.
    pub bucket: Option<String>,
    /// Buckets: columns whose values make a segment each within a bucket (`["tenant"]`: a segment per bucket and
    /// tenant), and the labels of the same names.
    #[serde(default)]
    pub label_columns: Vec<String>,
    /// Buckets: rows moved or deleted per transaction, so that no transaction holds its locks or grows the WAL
    /// without bound.
    #[serde(default = "default_delete_batch_rows")]
    pub delete_batch_rows: u32,
    /// Regex over the partition's name; its named captures become labels (besides `schema` and `table`).
    pub labels: Option<String>,
    /// `lock_timeout` of every statement the store runs, in milliseconds.
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    /// `statement_timeout` of every statement the store runs, in milliseconds.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// Grace period of a dropped partition, in seconds: a drop detaches it and moves it into a trash schema of the
    /// same database (`_retention_trash_<trashed_at_ms>_<expires_at_ms>`), where `retention trash restore` can attach
    /// it back until a pass purges it after the grace period. 0 drops at once. Default 86400 (a day); at most 10 years.
    #[serde(default = "default_trash_grace_secs")]
    pub trash_grace_secs: u64,
    /// Archive destination: `file:///path` or `s3://bucket/prefix` (credentials from the usual AWS environment). An
    /// archived partition is a Parquet object `<schema>/<table>/<partition>.parquet` there, beside its manifest.
    /// Without it, a plan that archives is refused.
    pub archive_url: Option<String>,
}

fn default_trash_grace_secs() -> u64 {
    86_400
}

fn default_delete_batch_rows() -> u32 {
    10_000
}

/// Where the password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    None,
    Env(String),
    File(PathBuf),
}

/// The layout of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Declarative RANGE partitioning on a time column: a segment per leaf partition.
    Partitioned,
    /// A plain table: a segment per time bucket (and label values).
    Buckets,
    /// A TimescaleDB hypertable: a segment per chunk.
    Hypertable,
}

/// How a plain table is cut into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    pub time_column: String,
    /// `date_bin`'s stride, as PostgreSQL reads it (`1 day`).
    pub interval: String,
    pub width_ms: i64,
    pub label_columns: Vec<String>,
    pub batch_rows: u32,
}

/// The section, validated.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: String,
    pub password: Password,
    pub schema: String,
    pub table: String,
    /// `None`: detect.
    pub layout: Option<Layout>,
    /// Set when `time_column` is (the buckets layout's settings).
    pub buckets: Option<Buckets>,
    pub labels: Option<Regex>,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// Zero: a drop deletes at once.
    pub trash_grace: Duration,
    pub archive_url: Option<url::Url>,
    /// A name of this database among all (`/postgres/<host>:<port>/<database>`), for [`crate::crashpoint::hit_for`]:
    /// a test injects failures into one database's actions only.
    pub scope: std::path::PathBuf,
}

impl PostgresConfig {
    /// Validates the section as written; `at` is its field path (`dataset[3].postgres`), a relative password file is
    /// resolved against `base`.
    pub fn from_raw(raw: RawPostgres, at: &str, base: &Path) -> Result<PostgresConfig, FieldError> {
        let url: tokio_postgres::Config = raw.url.parse().map_err(|e| {
            invalid(
                format!("{at}.url"),
                format!("{:?}", raw.url),
                format!("not a PostgreSQL connection URL ({e}); e.g. postgres://user@host:5432/db"),
            )
        })?;
        if url.get_password().is_some() {
            return Err(invalid(
                format!("{at}.url"),
                "(a URL with a password)",
                "holds a password: never put it in the config file; use password_env or password_file",
            ));
        }
        let password = match (raw.password_env, raw.password_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{at}.password_env"),
                    "(both set)",
                    "set password_env or password_file, not both",
                ));
            }
            (Some(var), None) => Password::Env(var),
            (None, Some(file)) => Password::File(base.join(file)),
            (None, None) => Password::None,
        };
        let (schema, table) = match (&raw.schema, raw.table.split_once('.')) {
            (Some(s), _) => (s.clone(), raw.table.clone()),
            (None, Some((s, t))) => (s.to_string(), t.to_string()),
            (None, None) => ("public".to_string(), raw.table.clone()),
        };
        if schema.is_empty() || table.is_empty() || (raw.schema.is_none() && table.contains('.')) {
            return Err(invalid(
                format!("{at}.table"),
                format!("{:?}", raw.table),
                "must be `schema.table` or `table` (for a name holding a dot, set `schema` and the bare `table`)",
            ));
        }
        if schema.starts_with(super::state::ENGINE_SCHEMA) {
            return Err(invalid(
                format!("{at}.table"),
                format!("{:?}", raw.table),
                format!(
                    "schemas named {}* are the engine's own (state binding, trash): never a dataset",
                    super::state::ENGINE_SCHEMA
                ),
            ));
        }
        let layout = match raw.layout.as_deref() {
            None => None,
            Some("partitioned") => Some(Layout::Partitioned),
            Some("buckets") => Some(Layout::Buckets),
            Some("hypertable") => Some(Layout::Hypertable),
            Some(other) => {
                return Err(invalid(
                    format!("{at}.layout"),
                    format!("{other:?}"),
                    "must be \"partitioned\", \"buckets\" or \"hypertable\"",
                ));
            }
        };
        let buckets = match &raw.time_column {
            None => {
                if layout == Some(Layout::Buckets) {
                    return Err(invalid(
                        format!("{at}.time_column"),
                        "(not set)",
                        "the buckets layout needs the timestamp column a row's time is, e.g. time_column = \"ts\"",
                    ));
                }
                // Settings of buckets without buckets would be silently ignored.
                if let Some(b) = &raw.bucket {
                    return Err(invalid(
                        format!("{at}.bucket"),
                        format!("{b:?}"),
                        "is for time buckets of a plain table: set time_column too, or remove it",
                    ));
                }
                if !raw.label_columns.is_empty() {
                    return Err(invalid(
                        format!("{at}.label_columns"),
                        format!("{:?}", raw.label_columns),
                        "are for time buckets of a plain table: set time_column too, or remove them",
                    ));
                }
                None
            }
            Some(col) => {
                let text = raw.bucket.clone().unwrap_or_else(|| "1 day".to_string());
                let width_ms = bucket_width_ms(&text).ok_or_else(|| {
                    invalid(
                        format!("{at}.bucket"),
                        format!("{text:?}"),
                        "must be \"<n> minute|hour|day|week[s]\", e.g. \"1 day\" or \"6 hours\"",
                    )
                })?;
                let mut seen = std::collections::BTreeSet::new();
                for l in &raw.label_columns {
                    let problem = if l == "schema" || l == "table" {
                        "names a label every segment has already"
                    } else if !seen.insert(l) {
                        "is given twice"
                    } else {
                        continue;
                    };
                    return Err(invalid(
                        format!("{at}.label_columns"),
                        format!("{:?}", raw.label_columns),
                        format!("{l:?} {problem}: list each column once, and not schema or table"),
                    ));
                }
                if raw.delete_batch_rows == 0 || raw.delete_batch_rows > 1_000_000 {
                    return Err(invalid(
                        format!("{at}.delete_batch_rows"),
                        raw.delete_batch_rows,
                        "must be 1 to 1000000",
                    ));
                }
                Some(Buckets {
                    time_column: col.clone(),
                    interval: text,
                    width_ms,
                    label_columns: raw.label_columns.clone(),
                    batch_rows: raw.delete_batch_rows,
                })
            }
        };
        let labels = match &raw.labels {
            None => None,
            Some(re) => Some(
                Regex::new(re)
                    .map_err(|e| invalid(format!("{at}.labels"), format!("{re:?}"), format!("invalid regex: {e}")))?,
            ),
        };
        for (field, ms) in [
            ("lock_timeout_ms", raw.lock_timeout_ms),
            ("statement_timeout_ms", raw.statement_timeout_ms),
        ] {
            if ms == 0 || ms > 3_600_000 {
                return Err(invalid(format!("{at}.{field}"), ms, "must be 1 to 3600000 ms"));
            }
        }
        if raw.trash_grace_secs > crate::store::dir::config::MAX_TRASH_GRACE_SECS {
            return Err(invalid(
                format!("{at}.trash_grace_secs"),
                raw.trash_grace_secs,
                format!(
                    "must be at most {} (10 years); 0 drops at once",
                    crate::store::dir::config::MAX_TRASH_GRACE_SECS
                ),
            ));
        }
        let archive_url = match &raw.archive_url {
            None => None,
            Some(u) => Some(
                crate::store::dir::config::parse_archive_url(u, base)
                    .map_err(|p| invalid(format!("{at}.archive_url"), u, p))?,
            ),
        };
        let scope = std::path::Path::new("/postgres")
            .join(format!(
                "{}:{}",
                url.get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string().replace('/', "_"),
                    })
                    .unwrap_or_default(),
                url.get_ports().first().copied().unwrap_or(5432)
            ))
            .join(url.get_dbname().unwrap_or("postgres"));
        Ok(PostgresConfig {
            scope,
            archive_url,
            trash_grace: Duration::from_secs(raw.trash_grace_secs),
            url: raw.url,
            password,
            schema,
            table,
            layout,
            buckets,
            labels,
            lock_timeout: Duration::from_millis(raw.lock_timeout_ms),
            statement_timeout: Duration::from_millis(raw.statement_timeout_ms),
        })
    }

    /// The names of the labels its segments can have: `schema`, `table`, the named captures of `labels` and the
    /// `label_columns`.
    pub fn label_keys(&self) -> Vec<String> {
        let mut keys = vec!["schema".to_string(), "table".to_string()];
        if let Some(b) = &self.buckets {
            keys.extend(b.label_columns.iter().cloned());
        }
        if let Some(re) = &self.labels {
            keys.extend(re.capture_names().flatten().map(str::to_string));
        }
        keys
    }
}

/// The width of a bucket written `"<n> <unit>"`, in milliseconds (units that `date_bin` takes: no months).
fn bucket_width_ms(text: &str) -> Option<i64> {
    let (n, unit) = text.trim().split_once(' ')?;
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit_ms = match unit.trim().trim_end_matches('s') {
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::bucket_width_ms;

    #[test]
    fn a_bucket_is_a_whole_number_of_minutes_hours_days_or_weeks() {
        assert_eq!(bucket_width_ms("1 day"), Some(86_400_000));
        assert_eq!(bucket_width_ms("6 hours"), Some(6 * 3_600_000));
        assert_eq!(bucket_width_ms("15 minutes"), Some(15 * 60_000));
        assert_eq!(bucket_width_ms("2 weeks"), Some(14 * 86_400_000));
        for bad in ["1 month", "day", "0 days", "-1 day", "1.5 days", ""] {
            assert_eq!(bucket_width_ms(bad), None, "{bad}");
        }
    }
}
