//! The names the directory store gives things: temporaries (with their keyed tag), trash batches, and times parsed
//! from names.

use sha2::{Digest as _, Sha256};

use super::{TMP_SUFFIX, split_rel};

/// The key that tags this root's temporaries: a random 256-bit value kept in the engine area.
#[derive(Clone, Copy)]
pub(super) struct TempKey(pub(super) [u8; 32]);

impl TempKey {
    /// The tag of the temporary that becomes the file at `rel`: 16 hex digits of a keyed hash of the path.
    pub(super) fn tag(&self, rel: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"retention temporary\0");
        h.update(self.0);
        h.update(rel.as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// The file name of the temporary that becomes the file at `rel`.
    pub(super) fn temp_name(&self, rel: &str) -> String {
        let (_, base) = split_rel(rel);
        format!(".{base}.{}{TMP_SUFFIX}", self.tag(rel))
    }
}

/// For a file name shaped like one of our temporaries, `.<base>[.<tag>].retention-tmp`: the base it would become and
/// the tag, if it has one of the right shape.
pub(super) fn temp_parts(file_name: &str) -> Option<(&str, Option<&str>)> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    if inner.is_empty() {
        return None;
    }
    match inner.rsplit_once('.') {
        Some((base, tag)) if !base.is_empty() && tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some((base, Some(tag)))
        }
        _ => Some((inner, None)),
    }
}

pub(super) fn parse_time(value: &str, items: &[chrono::format::Item<'static>]) -> Option<i64> {
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
    if let Ok(t) = parsed.to_naive_datetime_with_offset(0) {
        return Some(t.and_utc().timestamp_millis());
    }
    parsed
        .to_naive_date()
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// The name of a trash batch directory: `<trashed_at_ms>-<expires_at_ms>`.
pub(super) fn batch_name(trashed_at_ms: i64, expires_at_ms: i64) -> String {
    format!("{trashed_at_ms}-{expires_at_ms}")
}

/// The trash time and expiry a batch directory's name records; `None` for anything we did not name.
pub(super) fn parse_batch_name(name: &str) -> Option<(i64, i64)> {
    let (t, e) = name.split_once('-')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(t) || !digits(e) {
        return None;
    }
    Some((t.parse().ok()?, e.parse().ok()?))
}
