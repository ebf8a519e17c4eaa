//! `[dataset.directory]`: the directory store's config section as written ([`RawDirectory`], refusing unknown keys)
//! and validated ([`DirectoryConfig`]); and [`bound`], what the whole config tells each directory dataset of the
//! others and of the engine (excluded paths, same-root siblings, refused overlaps).

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::Deserialize;
use url::Url;

use crate::store::{FieldError, TRASH_DIR};

fn invalid(field: impl Into<String>, value: impl ToString, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// `[dataset.directory]`: a directory store; every file matching the globs is a segment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    /// Root directory of the dataset; relative paths are relative to the config file.
    pub root: PathBuf,
    /// Globs over paths relative to the root; a file is a segment when it matches one (default: every file).
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Globs over relative paths that are never segments, even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Regex over the relative path (`/`-separated, without `.zst`); its named captures become labels.
    pub labels: Option<String>,
    /// Where a segment's time comes from: `"mtime"` (default) or `"label:<name>"` for a captured date.
    #[serde(default = "default_time")]
    pub time: String,
    /// chrono format of the captured date when `time` is a label, e.g. `%Y-%m-%d` (the default).
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// zstd level for compression, 1 to 19.
    #[serde(default = "default_level")]
    pub compression_level: i32,
    /// Archive destination: `file:///path` or `s3://bucket/prefix` (credentials from the usual AWS environment).
    /// Without it, a plan that archives fails.
    pub archive_url: Option<String>,
    /// Grace period of a dropped segment, in seconds: a drop moves a file into the dataset's trash
    /// (`<root>/.retention-trash/`), an archived object into the archive's (`<prefix>/.retention-trash/`), where `retention trash restore` can bring it back until a pass purges it after
    /// the grace period. 0 deletes at once. Default 86400 (a day); at most 10 years.
    #[serde(default = "default_trash_grace_secs")]
    pub trash_grace_secs: u64,
}

fn default_include() -> Vec<String> {
    vec!["**".to_string()]
}

fn default_time() -> String {
    "mtime".to_string()
}

fn default_time_format() -> String {
    "%Y-%m-%d".to_string()
}

fn default_level() -> i32 {
    3
}

fn default_trash_grace_secs() -> u64 {
    86_400
}

/// Longest `trash_grace_secs`: ten years. A longer grace is no undo window but a second retention policy, most likely
/// a unit mistake.
pub const MAX_TRASH_GRACE_SECS: u64 = 10 * 365 * 86_400;

/// Something under a dataset's root that is never part of it, whatever the globs say: the engine's own files and
/// directories, and other datasets' roots.
#[derive(Debug, Clone)]
pub struct Excluded {
    pub path: PathBuf,
    /// What it is, for messages: `the state directory (service.state_dir)`, `the root of dataset "x"`, ...
    pub what: String,
}

/// Another dataset with the same root: a file both datasets' globs match belongs to neither.
#[derive(Debug, Clone)]
pub struct Sibling {
    pub dataset: String,
    pub include: GlobSet,
    pub exclude: GlobSet,
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub root: PathBuf,
    pub include: GlobSet,
    pub exclude: GlobSet,
    pub labels: Option<Regex>,
    pub time: TimeSource,
    pub compression_level: i32,
    pub archive_url: Option<Url>,
    /// How long a dropped hot or compressed file stays restorable in the trash; zero deletes at once.
    pub trash_grace: Duration,
    /// Directories and files under the root that are never part of the dataset (filled in by [`Config`] from the
    /// whole config: the engine's own paths, other datasets' roots).
    pub excluded: Vec<Excluded>,
    /// Datasets with the same root.
    pub siblings: Vec<Sibling>,
}

impl DirectoryConfig {
    /// The names of the labels its segments can have: the named captures of `labels`.
    pub fn label_keys(&self) -> Vec<String> {
        self.labels
            .as_ref()
            .map(|re| re.capture_names().flatten().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// The file's modification time.
    Mtime,
    /// A label captured by the `labels` regex, parsed with a chrono format (UTC).
    Label { name: String, format: String },
}

impl DirectoryConfig {
    /// Validates the section as written; `at` is its field path (`dataset[3].directory`), relative paths are
    /// resolved against `base`.
    pub fn from_raw(raw: RawDirectory, at: &str, base: &Path) -> Result<DirectoryConfig, FieldError> {
        let root = base.join(&raw.root);
        if !root.is_dir() {
            return Err(invalid(format!("{at}.root"), root.display(), "is not a directory"));
        }
        let include = glob_set(&raw.include, &format!("{at}.include"))?;
        let exclude = glob_set(&raw.exclude, &format!("{at}.exclude"))?;
        let labels = match &raw.labels {
            None => None,
            Some(re) => Some(
                Regex::new(re)
                    .map_err(|e| invalid(format!("{at}.labels"), format!("{re:?}"), format!("invalid regex: {e}")))?,
            ),
        };
        let time = match raw.time.as_str() {
            "mtime" => TimeSource::Mtime,
            t => match t.strip_prefix("label:") {
                Some(name) => {
                    let has_capture = labels
                        .as_ref()
                        .is_some_and(|re| re.capture_names().flatten().any(|c| c == name));
                    if !has_capture {
                        return Err(invalid(
                            format!("{at}.time"),
                            format!("{t:?}"),
                            format!("the labels regex has no named capture {name:?}"),
                        ));
                    }
                    check_time_format(&raw.time_format, &format!("{at}.time_format"))?;
                    TimeSource::Label {
                        name: name.to_string(),
                        format: raw.time_format.clone(),
                    }
                }
                None => {
                    return Err(invalid(
                        format!("{at}.time"),
                        format!("{t:?}"),
                        "must be \"mtime\" or \"label:<capture name>\"",
                    ));
                }
            },
        };
        if !(1..=19).contains(&raw.compression_level) {
            return Err(invalid(
                format!("{at}.compression_level"),
                raw.compression_level,
                "must be between 1 and 19",
            ));
        }
        let archive_url = match &raw.archive_url {
            None => None,
            Some(u) => Some(parse_archive_url(u, base).map_err(|p| invalid(format!("{at}.archive_url"), u, p))?),
        };
        if raw.trash_grace_secs > MAX_TRASH_GRACE_SECS {
            return Err(invalid(
                format!("{at}.trash_grace_secs"),
                raw.trash_grace_secs,
                format!("must be at most {MAX_TRASH_GRACE_SECS} (10 years); 0 deletes at once"),
            ));
        }
        Ok(DirectoryConfig {
            root,
            include,
            exclude,
            labels,
            time,
            compression_level: raw.compression_level,
            archive_url,
            trash_grace: Duration::from_secs(raw.trash_grace_secs),
            excluded: Vec::new(),
            siblings: Vec::new(),
        })
    }
}

fn glob_set(patterns: &[String], field: &str) -> Result<GlobSet, FieldError> {
    let mut b = GlobSetBuilder::new();
    for (j, p) in patterns.iter().enumerate() {
        // literal_separator keeps `*` from crossing `/`, as in a shell.
        let g = GlobBuilder::new(p).literal_separator(true).build().map_err(|e| {
            invalid(
                format!("{field}[{j}]"),
                format!("{p:?}"),
                format!("invalid glob: {}", e.kind()),
            )
        })?;
        b.add(g);
    }
    b.build()
        .map_err(|e| invalid(field, format!("{patterns:?}"), format!("invalid globs: {e}")))
}

fn check_time_format(format: &str, field: &str) -> Result<(), FieldError> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(invalid(field, format!("{format:?}"), "invalid chrono format"));
    }
    Ok(())
}

/// Accepts `file:///abs`, `file://relative` is refused; `s3://bucket[/prefix]`. A `file://` URL's directory must exist.
pub(crate) fn parse_archive_url(u: &str, base: &Path) -> Result<Url, String> {
    let url = Url::parse(u).map_err(|e| format!("invalid URL: {e}"))?;
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| "a file:// URL needs an absolute path, e.g. file:///var/archive".to_string())?;
            let path = base.join(path);
            if !path.is_dir() {
                return Err(format!("archive directory {} does not exist", path.display()));
            }
            Ok(url)
        }
        "s3" => {
            if url.host_str().unwrap_or("").is_empty() {
                return Err("an s3:// URL needs a bucket, e.g. s3://bucket/prefix".to_string());
            }
            Ok(url)
        }
        other => Err(format!("unsupported scheme {other:?}: use file:// or s3://")),
    }
}

/// `path` made absolute and free of symlinks, as far as it exists (the state directory may not exist yet): its
/// nearest existing ancestor canonicalised, the rest appended.
pub fn canonical(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// The archive location of a URL, for telling whether two overlap: `(scheme and bucket or "", path components)`.
fn archive_location(url: &Url) -> (String, Vec<String>) {
    match url.scheme() {
        "file" => {
            let dir = url.to_file_path().map(|p| canonical(&p)).unwrap_or_default();
            let parts = dir
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            ("file".to_string(), parts)
        }
        scheme => (
            format!("{scheme}://{}", url.host_str().unwrap_or("")),
            url.path()
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

/// What the config tells each directory dataset of the others and of the engine, so that no dataset ever manages the
/// engine's own files or another dataset's: a root inside an engine directory (`engine`: path and what it is) or a
/// trash is refused; two datasets sharing an archive location (the same, or one inside the other) are refused; the
/// engine's directories, every `file://` archive and other datasets' roots inside a root are excluded from it;
/// datasets with the same root are told of each other (`siblings`). `datasets` are `(index in the config, name,
/// store config)`.
pub fn bound(
    datasets: &mut [(usize, String, &mut DirectoryConfig)],
    mut engine: Vec<(PathBuf, String)>,
) -> Result<(), FieldError> {
    let roots: Vec<PathBuf> = datasets.iter().map(|(_, _, d)| canonical(&d.root)).collect();
    let mut archives: Vec<(usize, &str, Url)> = Vec::new();
    for (i, name, dir) in datasets.iter() {
        if let Some(url) = &dir.archive_url {
            if url.scheme() == "file"
                && let Ok(p) = url.to_file_path()
            {
                engine.push((canonical(&p), format!("the archive directory of dataset {name:?}")));
            }
            archives.push((*i, name.as_str(), url.clone()));
        }
    }
    for (k, (j, _, url)) in archives.iter().enumerate() {
        let (place, parts) = archive_location(url);
        for (_, other_name, other) in &archives[..k] {
            let (oplace, oparts) = archive_location(other);
            let n = parts.len().min(oparts.len());
            if place == oplace && parts[..n] == oparts[..n] {
                return Err(invalid(
                    format!("dataset[{j}].directory.archive_url"),
                    url,
                    format!(
                        "overlaps the archive of dataset {other_name:?} ({other}): datasets never share an archive \
                         location (one could act on the other's objects, whatever its legal holds); give each its own \
                         prefix or directory"
                    ),
                ));
            }
        }
    }
    for ((i, _, _), root) in datasets.iter().zip(&roots) {
        let at = format!("dataset[{i}].directory.root");
        if root.components().any(|c| c.as_os_str() == TRASH_DIR) {
            return Err(invalid(
                at,
                root.display(),
                "lies inside a trash (.retention-trash), the engine's own area of another root",
            ));
        }
        for (path, what) in &engine {
            if root.starts_with(path) {
                return Err(invalid(
                    at,
                    root.display(),
                    format!(
                        "lies inside {what} {}: a dataset never holds the engine's own files; choose a root \
                         outside it (or move it)",
                        path.display()
                    ),
                ));
            }
        }
    }
    for k in 0..datasets.len() {
        let mut excluded: Vec<Excluded> = engine
            .iter()
            .filter(|(p, _)| p.starts_with(&roots[k]))
            .map(|(p, what)| Excluded {
                path: p.clone(),
                what: what.clone(),
            })
            .collect();
        let mut siblings = Vec::new();
        for (j, other) in roots.iter().enumerate() {
            if k == j {
                continue;
            }
            let (_, name, od) = &datasets[j];
            if other == &roots[k] {
                siblings.push(Sibling {
                    dataset: name.clone(),
                    include: od.include.clone(),
                    exclude: od.exclude.clone(),
                });
            } else if other.starts_with(&roots[k]) {
                excluded.push(Excluded {
                    path: other.clone(),
                    what: format!("the root of dataset {name:?}"),
                });
            }
        }
        let d = &mut datasets[k].2;
        d.excluded = excluded;
        d.siblings = siblings;
    }
    Ok(())
}
