//! The intent of a drop, recorded on the partition itself before anything is changed: a `COMMENT ON TABLE` that
//! travels with the table (through the detach, the move into a trash schema and back), so that whatever instant a
//! drop is interrupted at, the table says what it is, where it came from and how to finish or undo the drop. Nothing
//! about an interrupted drop lives in the state database, so a pass with any state database settles it.
//!
//! The comment is `retention:v1 {json}` (see [`Intent`]). A trash schema's name tells the batch's times,
//! `_retention_trash_<trashed_at_ms>_<expires_at_ms>`, as the directory trash's batch directories do.

use serde::{Deserialize, Serialize};

use super::PostgresConfig;
use super::state::ENGINE_SCHEMA;

/// What a comment of the engine's starts with.
pub const PREFIX: &str = "retention:v1 ";

/// What an intent is for.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A drop, into the trash or (`trash` false) for good.
    #[default]
    Drop,
    /// An archive to the Parquet object `key`: the table is dropped once the object is verified.
    Archive,
    /// A restore from the Parquet object `key`: the objects are deleted once the partition is attached.
    Restore,
}

/// What a partition's comment records while an action on it is under way, and in the trash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Intent {
    #[serde(default)]
    pub kind: Kind,
    /// The archive object's key relative to the archive's prefix (archive and restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The dataset's table (schema, name): whose trash the partition is in.
    pub table: (String, String),
    /// Where the partition was (schema, name), and so where a restore puts it back.
    pub origin: (String, String),
    /// Its direct parent (schema, name), which a restore attaches it to.
    pub parent: (String, String),
    /// Its bound as the server printed it (`FOR VALUES FROM (...) TO (...)`).
    pub bound: String,
    /// False when the drop deletes at once (`trash_grace_secs = 0`).
    pub trash: bool,
    pub trashed_at_ms: i64,
    pub expires_at_ms: i64,
    /// The labels its segment had, for the legal holds that cover the trash.
    pub labels: Vec<(String, String)>,
    /// The comment it had before, put back by a restore.
    pub comment: Option<String>,
    /// For a bucket of a plain table: which rows (the table is `origin`; this table in the trash holds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketRef>,
}

/// A time bucket of a plain table, and the values of its label columns (`None`: NULL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketRef {
    pub start_ms: i64,
    pub end_ms: i64,
    pub labels: Vec<(String, Option<String>)>,
}

impl BucketRef {
    /// The segment's name: its start (UTC, to the minute) and its label values, `2026-01-01T00:00Z/acme`.
    pub fn name(&self) -> String {
        let start = chrono::DateTime::from_timestamp_millis(self.start_ms).map_or_else(
            || self.start_ms.to_string(),
            |t| t.format("%Y-%m-%dT%H:%MZ").to_string(),
        );
        let mut out = start;
        for (_, v) in &self.labels {
            out.push('/');
            out.push_str(v.as_deref().unwrap_or("(null)"));
        }
        out
    }
}

impl Intent {
    pub fn to_comment(&self) -> String {
        format!("{PREFIX}{}", serde_json::to_string(self).expect("an intent serialises"))
    }

    /// The intent a comment records, if it is one of the engine's.
    pub fn parse(comment: &str) -> Option<Intent> {
        serde_json::from_str(comment.strip_prefix(PREFIX)?).ok()
    }

    /// Whether it is a drop of `config`'s table.
    pub fn of(&self, c: &PostgresConfig) -> bool {
        self.table.0 == c.schema && self.table.1 == c.table
    }

    /// The trash schema of its batch.
    pub fn trash_schema(&self) -> String {
        trash_schema(self.trashed_at_ms, self.expires_at_ms)
    }

    /// The segment's name as scans show it: the partition's name, schema-qualified when it is not the table's schema.
    pub fn shown(&self) -> String {
        match &self.bucket {
            Some(b) => b.name(),
            None => shown(&self.table.0, &self.origin.0, &self.origin.1),
        }
    }
}

/// Prefix of every trash schema.
pub fn trash_prefix() -> String {
    format!("{ENGINE_SCHEMA}_trash_")
}

/// `_retention_trash_<trashed_at_ms>_<expires_at_ms>`.
pub fn trash_schema(trashed_at_ms: i64, expires_at_ms: i64) -> String {
    format!("{}{trashed_at_ms}_{expires_at_ms}", trash_prefix())
}

/// The times a trash schema's name tells, if it is one.
pub fn trash_times(schema: &str) -> Option<(i64, i64)> {
    let (a, b) = schema.strip_prefix(&trash_prefix())?.split_once('_')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A partition's name as scans show it.
pub fn shown(table_schema: &str, schema: &str, name: &str) -> String {
    if schema == table_schema {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_round_trips_through_its_comment_and_a_trash_schema_tells_its_times() {
        let i = Intent {
            kind: Kind::Drop,
            key: None,
            table: ("public".into(), "events".into()),
            origin: ("public".into(), "it's \"odd\"".into()),
            parent: ("public".into(), "events".into()),
            bound: "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00')".into(),
            trash: true,
            trashed_at_ms: 1_767_225_600_000,
            expires_at_ms: 1_767_312_000_000,
            labels: vec![("day".into(), "20260101".into())],
            comment: Some("kept".into()),
            bucket: None,
        };
        assert_eq!(Intent::parse(&i.to_comment()), Some(i.clone()));
        assert_eq!(Intent::parse("a comment of a user's"), None);
        assert_eq!(Intent::parse("retention:v1 {not json"), None);
        let s = i.trash_schema();
        assert_eq!(s, "_retention_trash_1767225600000_1767312000000");
        assert!(s.len() <= 63, "an identifier");
        assert_eq!(trash_times(&s), Some((1_767_225_600_000, 1_767_312_000_000)));
        assert_eq!(trash_times("_retention"), None);
        assert_eq!(trash_times("_retention_trash_x_1"), None);
    }
}
