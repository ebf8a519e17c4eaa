//! The archive destination of a directory store: an object store reached through `object_store`, either a local
//! directory (`file:///abs/dir`, [`LocalFileSystem`]) or S3 (`s3://bucket/prefix`, credentials from the usual AWS
//! environment through [`AmazonS3Builder::from_env`]).
//!
//! Keys mirror the dataset's relative paths under the URL's prefix: a hot file `a/b.log` is archived as
//! `<prefix>/a/b.log`, a compressed one `a/b.log.zst` as `<prefix>/a/b.log.zst`, so archived bytes are stored exactly as
//! they were and the logical name stays the path without `.zst`.
//!
//! Dropped objects wait in the archive's own trash, `<prefix>/.retention-trash/<batch>/<key as it was>` (the batch
//! named `<trashed_at_ms>-<expires_at_ms>` as in the dataset's trash): listings present them apart from the
//! dataset's objects ([`Archive::list_with_trash`]), never as objects.
//!
//! Uploads stream the file through [`BufWriter`] (one `put` for small files, a multipart upload in parts of
//! [`Archive::part_size`] for large ones), so a 10 GB file is never held in memory, and hash it on the way so that the
//! copy can be verified by reading it back. [`LocalFileSystem`] writes through a staging file `<path>#<digits>` that its
//! listings hide, and renames it into place without fsync: this module makes a local destination durable itself
//! ([`Archive::sync`]) and finds staging files that a crash left behind ([`Archive::staging_leftovers`]).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{GetResultPayload, ObjectStore, PutMode, PutOptions, PutPayload};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

mod digest;
pub mod trash;

use digest::Digester;
pub(crate) use digest::digest_reader;

use super::{StoreError, TRASH_DIR};

/// Where uploads too large for one request are staged before they are copied, without replacing anything, to their
/// key: `<prefix>/.retention-tmp/<uuid>`. Only this engine writes there (an archive location belongs to one dataset),
/// so recovery deletes whatever it finds there.
pub const STAGING_DIR: &str = ".retention-tmp";

/// S3's limit on the size of an object copied in one request, which a conditional copy (`copy_if_not_exists`) is.
const S3_COPY_LIMIT: u64 = 5 << 30;

/// Size of the parts of a multipart upload, and the size up to which a file is uploaded with one `put`. S3 needs
/// parts of at least 5 MiB.
const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Size of the chunks read from a file or an object while hashing or uploading it.
const CHUNK: usize = 1 << 20;

/// An archive destination.
#[derive(Debug)]
pub struct Archive {
    url: Url,
    store: Arc<dyn ObjectStore>,
    /// Key prefix of the dataset's objects (the URL's path for S3, empty for a local directory, which is the root of
    /// its [`LocalFileSystem`]).
    prefix: ObjectPath,
    /// The directory of a `file://` destination (canonical).
    local_dir: Option<PathBuf>,
    part_size: usize,
}

/// An object of the archive.
#[derive(Debug, Clone)]
pub struct Object {
    /// Key relative to the prefix, `/`-separated, decoded: the relative path the file had in the dataset.
    pub rel: String,
    pub location: ObjectPath,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// An object of the archive's trash: `<prefix>/.retention-trash/<batch>/<rel>`.
#[derive(Debug, Clone)]
pub struct TrashedObject {
    /// The batch directory's name (`<trashed_at_ms>-<expires_at_ms>` when we made it).
    pub batch: String,
    /// The object, its `rel` being the key it had before (relative to the prefix).
    pub object: Object,
}

/// One listing of an archive location.
#[derive(Debug, Default)]
pub struct Listing {
    /// The dataset's archived objects.
    pub objects: Vec<Object>,
    /// The objects of the archive's trash.
    pub trashed: Vec<TrashedObject>,
    /// Uploads staged under [`STAGING_DIR`] that an interrupted archive left behind.
    pub staged: Vec<ObjectPath>,
}

/// The size and SHA-256 of some content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    pub size: u64,
    pub sha256: [u8; 32],
}

impl Archive {
    /// Connects to the destination of `url` and checks that it can be listed.
    pub async fn open(url: &Url) -> Result<Archive, StoreError> {
        let err = |source: object_store::Error| StoreError::Backend {
            what: format!("archive {url}"),
            source: Box::new(source),
        };
        let (store, prefix, local_dir): (Arc<dyn ObjectStore>, ObjectPath, Option<PathBuf>) = match url.scheme() {
            "file" => {
                let dir = url.to_file_path().map_err(|()| {
                    StoreError::Refused(format!("archive {url}: a file:// URL needs an absolute path"))
                })?;
                let dir =
                    std::fs::canonicalize(&dir).map_err(|e| StoreError::io("cannot open archive directory", url, e))?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(err)?;
                (Arc::new(fs), ObjectPath::default(), Some(dir))
            }
            "s3" => {
                let s3 = s3_builder(url)?.build().map_err(err)?;
                let prefix = ObjectPath::from_url_path(url.path()).map_err(|e| err(e.into()))?;
                (Arc::new(s3), prefix, None)
            }
            other => {
                return Err(StoreError::Refused(format!(
                    "archive {url}: unsupported scheme {other:?}, use file:// or s3://"
                )));
            }
        };
        let archive = Archive {
            url: url.clone(),
            store,
            prefix,
            local_dir,
            part_size: DEFAULT_PART_SIZE,
        };
        // Listing one entry proves that the destination exists and that the credentials can read it.
        if let Some(Err(e)) = archive.store.list(archive.list_prefix()).next().await {
            if url.scheme() == "s3" && !has_aws_credentials() {
                return Err(StoreError::Refused(format!(
                    "archive {url}: cannot list it, and no AWS credentials are set: set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE, or run where an instance role provides \
                     them); without them the instance metadata service was asked and failed: {e}"
                )));
            }
            return Err(err(e));
        }
        Ok(archive)
    }

    /// Sets the multipart part size (tests use small parts to exercise multipart uploads with small files; S3 needs
    /// at least 5 MiB).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The directory of a `file://` destination.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local_dir.as_deref()
    }

    fn list_prefix(&self) -> Option<&ObjectPath> {
        (!self.prefix.as_ref().is_empty()).then_some(&self.prefix)
    }

    fn error(&self, source: object_store::Error) -> StoreError {
        StoreError::Backend {
            what: format!("archive {}", self.url),
            source: Box::new(source),
        }
    }

    /// The key of the dataset file at `rel` (relative, `/`-separated).
    pub fn key(&self, rel: &str) -> ObjectPath {
        self.prefix
            .parts()
            .chain(rel.split('/').filter(|p| !p.is_empty()).map(PathPart::from))
            .collect()
    }

    /// The key in the trash batch `batch` of the object whose key was `rel`.
    pub fn trash_key(&self, batch: &str, rel: &str) -> ObjectPath {
        self.prefix
            .parts()
            .chain([PathPart::from(TRASH_DIR), PathPart::from(batch)])
            .chain(rel.split('/').filter(|p| !p.is_empty()).map(PathPart::from))
            .collect()
    }

    /// The relative path of the object at `location`, if it is under the prefix.
    pub fn rel_of(&self, location: &ObjectPath) -> Option<String> {
        let mut rel = String::new();
        for part in location.prefix_match(&self.prefix)? {
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(&percent_decode(part.as_ref())?);
        }
        (!rel.is_empty()).then_some(rel)
    }

    /// A displayable address of `location`, for reports and errors.
    pub fn display(&self, location: &ObjectPath) -> String {
        match &self.local_dir {
            Some(dir) => format!("file://{}/{location}", dir.display()),
            None => format!(
                "{}://{}/{location}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            ),
        }
    }

    /// Every object under the prefix, from one listing: the dataset's objects, and apart from them those of the trash.
    pub async fn list_with_trash(&self) -> Result<(Vec<Object>, Vec<TrashedObject>), StoreError> {
        let l = self.list_under(self.list_prefix().cloned()).await?;
        Ok((l.objects, l.trashed))
    }

    /// Everything under the prefix: the dataset's objects, the trash's, and staged uploads an interrupted archive left.
    pub async fn list_all(&self) -> Result<Listing, StoreError> {
        self.list_under(self.list_prefix().cloned()).await
    }

    /// The objects of the trash only.
    pub async fn list_trash(&self) -> Result<Vec<TrashedObject>, StoreError> {
        let top: ObjectPath = self.prefix.parts().chain([PathPart::from(TRASH_DIR)]).collect();
        Ok(self.list_under(Some(top)).await?.trashed)
    }

    async fn list_under(&self, prefix: Option<ObjectPath>) -> Result<Listing, StoreError> {
        let mut objects = Vec::new();
        let mut trashed = Vec::new();
        let mut staged = Vec::new();
        let mut stream = self.store.list(prefix.as_ref());
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| self.error(e))?;
            let Some(rel) = self.rel_of(&meta.location) else {
                continue;
            };
            let object = |rel: String| Object {
                rel,
                location: meta.location.clone(),
                size: meta.size,
                last_modified: meta.last_modified,
            };
            if rel.strip_prefix(STAGING_DIR).is_some_and(|r| r.starts_with('/')) {
                staged.push(meta.location.clone());
                continue;
            }
            match rel.strip_prefix(TRASH_DIR).and_then(|r| r.strip_prefix('/')) {
                // `<batch>/<rel>`; anything else in the trash is not ours to show.
                Some(inside) => {
                    if let Some((batch, rel)) = inside.split_once('/') {
                        trashed.push(TrashedObject {
                            batch: batch.to_string(),
                            object: object(rel.to_string()),
                        });
                    }
                }
                None => objects.push(object(rel)),
            }
        }
        Ok(Listing {
            objects,
            trashed,
            staged,
        })
    }

    /// Size and modification time of an object, `None` when there is none at `location`.
    pub async fn head(&self, location: &ObjectPath) -> Result<Option<(u64, DateTime<Utc>)>, StoreError> {
        match self.store.head(location).await {
            Ok(meta) => Ok(Some((meta.size, meta.last_modified))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Uploads `file` (already open, read from its start) to `location`, which must not exist yet (an object there may
    /// hold another file that had the same name, e.g. a log rotated under a reused name): the object is created only if
    /// the key is free, never replacing one that appeared meanwhile. A file up to [`Archive::part_size`] goes in one
    /// conditional `PUT` (`If-None-Match: *` on S3, a no-replace link for a local directory); a larger one is uploaded
    /// in parts to a staging key under [`STAGING_DIR`], then copied to its key without replacing anything, and the
    /// staging object deleted. Returns the size and hash of what was read.
    pub async fn upload(&self, file: std::fs::File, src: &Path, location: &ObjectPath) -> Result<Content, StoreError> {
        let exists = || StoreError::Taken {
            doing: "archive",
            name: src.display().to_string(),
            place: self.display(location),
        };
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("cannot read", src.display(), e))?
            .len();
        if len <= self.part_size as u64 {
            let (content, data) = tokio::task::spawn_blocking(move || -> io::Result<(Content, Vec<u8>)> {
                let mut data = Vec::with_capacity(len as usize + 1);
                (&file).take(len + 1).read_to_end(&mut data)?;
                Ok((
                    Content {
                        size: data.len() as u64,
                        sha256: Sha256::digest(&data).into(),
                    },
                    data,
                ))
            })
            .await
            .map_err(|e| StoreError::io("cannot read", src.display(), io::Error::other(e.to_string())))?
            .map_err(|e| StoreError::io("cannot read", src.display(), e))?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            return match self.store.put_opts(location, PutPayload::from(data), opts).await {
                Ok(_) => Ok(content),
                Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
                Err(e) => Err(self.error(e)),
            };
        }
        if self.local_dir.is_none() && len > S3_COPY_LIMIT {
            // S3 copies at most 5 GiB in one request, so a conditional copy cannot publish this one: the key is
            // checked first and the upload goes straight to it (a window only for another writer of the same key).
            if self.head(location).await?.is_some() {
                return Err(exists());
            }
            return self.upload_parts(file, src, location).await;
        }
        let staging: ObjectPath = self
            .prefix
            .parts()
            .chain([
                PathPart::from(STAGING_DIR),
                PathPart::from(uuid::Uuid::now_v7().to_string().as_str()),
            ])
            .collect();
        let content = self.upload_parts(file, src, &staging).await?;
        let copied = self.store.copy_if_not_exists(&staging, location).await;
        // The staging object is ours alone; should deleting it fail, the next recovery does.
        let _ = self.store.delete(&staging).await;
        match copied {
            Ok(()) => Ok(content),
            Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Uploads `file` in parts to `location` (which it overwrites: callers use a key nobody else writes).
    async fn upload_parts(
        &self,
        file: std::fs::File,
        src: &Path,
        location: &ObjectPath,
    ) -> Result<Content, StoreError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        // Reading and hashing are blocking work; the upload is async: a bounded channel between them keeps at most a
        // few chunks in memory.
        let reader = tokio::task::spawn_blocking(move || -> io::Result<Content> {
            let mut file = file;
            let len = file.metadata()?.len();
            let mut sha = Sha256::new();
            let mut size = 0u64;
            loop {
                // Sized to what is left (plus one byte to see the end), so a small file costs a small buffer.
                let want = (CHUNK as u64).min(len.saturating_sub(size) + 1);
                let mut buf = Vec::with_capacity(want as usize);
                (&mut file).take(want).read_to_end(&mut buf)?;
                if buf.is_empty() {
                    break;
                }
                sha.update(&buf);
                size += buf.len() as u64;
                if tx.blocking_send(Bytes::from(buf)).is_err() {
                    return Err(io::Error::other("upload stopped"));
                }
            }
            Ok(Content {
                size,
                sha256: sha.finalize().into(),
            })
        });
        let mut writer =
            BufWriter::with_capacity(self.store.clone(), location.clone(), self.part_size).with_max_concurrency(2);
        let mut put_error = None;
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = writer.put(chunk).await {
                put_error = Some(e);
                break;
            }
        }
        drop(rx);
        let read = reader
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("reader task failed: {e}"))));
        match (read, put_error) {
            (Ok(content), None) => {
                writer
                    .shutdown()
                    .await
                    .map_err(|e| StoreError::io("cannot upload to archive", self.display(location), e))?;
                Ok(content)
            }
            (read, put_error) => {
                // Best effort: a multipart upload left behind is only a cost, never a visible object.
                let _ = writer.abort().await;
                Err(match (read, put_error) {
                    (_, Some(e)) => self.error(e),
                    (Err(e), None) => StoreError::io("cannot read", src.display(), e),
                    (Ok(_), None) => unreachable!(),
                })
            }
        }
    }

    /// A reader of the object at `location`'s bytes, for blocking code (comparisons): a local object's file, or an
    /// S3 object's body pumped through a bounded channel (dropping the reader stops the download).
    pub async fn reader(&self, location: &ObjectPath) -> Result<Box<dyn Read + Send>, StoreError> {
        let got = self.store.get(location).await.map_err(|e| self.error(e))?;
        match got.payload {
            GetResultPayload::File(file, _) => Ok(Box::new(file)),
            GetResultPayload::Stream(mut stream) => {
                let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
                tokio::spawn(async move {
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(io::Error::other);
                        let end = chunk.is_err();
                        if tx.send(chunk).await.is_err() || end {
                            break;
                        }
                    }
                });
                Ok(Box::new(ChannelReader {
                    rx,
                    chunk: Bytes::new(),
                }))
            }
        }
    }

    /// Reads the object at `location` back and hashes it; with `decompress`, hashes its zstd-decompressed content
    /// (failing with `InvalidData`/`UnexpectedEof` if it is not a complete zstd stream).
    pub async fn digest(&self, location: &ObjectPath, decompress: bool) -> Result<Content, StoreError> {
        let got = self.store.get(location).await.map_err(|e| self.error(e))?;
        let what = "cannot read back archive object";
        match got.payload {
            // A local object is a file: hash it on a blocking thread in large reads rather than as a stream of small
            // chunks.
            GetResultPayload::File(file, path) => tokio::task::spawn_blocking(move || digest_reader(file, decompress))
                .await
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(|e| StoreError::io(what, path.display(), e)),
            GetResultPayload::Stream(mut stream) => {
                let mut d = Digester::new(decompress);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.error(e))?;
                    d.update(&chunk)
                        .map_err(|e| StoreError::io(what, self.display(location), e))?;
                }
                d.finish().map_err(|e| StoreError::io(what, self.display(location), e))
            }
        }
    }

    /// Checks that the object at `location` holds exactly `expected`: size by HEAD, content by reading it back.
    pub async fn verify(&self, location: &ObjectPath, expected: &Content) -> Result<(), StoreError> {
        let Some((size, _)) = self.head(location).await? else {
            return Err(StoreError::Refused(format!(
                "archive object {} is missing after upload",
                self.display(location)
            )));
        };
        if size != expected.size {
            return Err(StoreError::Refused(format!(
                "archive object {} has {size} bytes after upload, expected {}",
                self.display(location),
                expected.size
            )));
        }
        let got = self.digest(location, false).await?;
        if got != *expected {
            return Err(StoreError::Refused(format!(
                "archive object {} reads back different from the source (sha256 {} instead of {})",
                self.display(location),
                hex::encode(got.sha256),
                hex::encode(expected.sha256)
            )));
        }
        Ok(())
    }

    /// Copies the object at `from` to `to`, which must not exist: a server-side copy for S3, a hard link for a local
    /// destination (which also refuses, atomically, to replace anything). A copy never overwrites an object.
    pub async fn copy_new(&self, from: &ObjectPath, to: &ObjectPath) -> Result<(), StoreError> {
        let exists = || StoreError::Taken {
            doing: "copy",
            name: self.display(from),
            place: self.display(to),
        };
        if self.local_dir.is_some() {
            return match self.store.copy_if_not_exists(from, to).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
                Err(e) => Err(self.error(e)),
            };
        }
        match self.store.copy_if_not_exists(from, to).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
            // A store configured without conditional copies (AWS_COPY_IF_NOT_EXISTS): the check leaves a window
            // only for another writer of the same new key.
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
                if self.head(to).await?.is_some() {
                    return Err(exists());
                }
                self.store.copy(from, to).await.map_err(|e| self.error(e))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// The whole content of a small object (a manifest), `None` when there is none at `location`.
    pub async fn get_small(&self, location: &ObjectPath) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(location).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(|e| self.error(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Creates the small object `location` holding `bytes` (a manifest), refusing ([`StoreError::Taken`]) when
    /// there is one already.
    pub async fn put_new(&self, location: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(location, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::Taken {
                doing: "write",
                name: self.display(location),
                place: self.display(location),
            }),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Deletes the object at `location`.
    pub async fn delete(&self, location: &ObjectPath) -> Result<(), StoreError> {
        self.store.delete(location).await.map_err(|e| self.error(e))
    }

    /// The file of the object at `location` in a local destination (`None` for other destinations): where a writer
    /// that streams an object itself (the PostgreSQL store's Parquet) puts a staged object directly.
    pub fn local_path(&self, location: &ObjectPath) -> Option<PathBuf> {
        self.local_dir.as_ref().map(|d| d.join(location.as_ref()))
    }

    /// Makes the objects at `locations` durable: for a local destination each file and its directories up to the
    /// destination's root are fsynced (for a few large objects, far cheaper than [`Archive::sync`]'s `syncfs` of a
    /// filesystem that a database also writes to); object stores proper are durable when a request returns.
    pub async fn sync_objects(&self, locations: &[ObjectPath]) -> Result<(), StoreError> {
        let Some(root) = self.local_dir.clone() else {
            return Ok(());
        };
        let paths: Vec<PathBuf> = locations.iter().map(|l| root.join(l.as_ref())).collect();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut dirs = std::collections::BTreeSet::new();
            for p in &paths {
                std::fs::File::open(p)?.sync_all()?;
                let mut d = p.parent();
                while let Some(dir) = d {
                    dirs.insert(dir.to_path_buf());
                    if dir == root {
                        break;
                    }
                    d = dir.parent();
                }
            }
            for d in dirs {
                std::fs::File::open(&d)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::io("cannot sync archive", &self.url, io::Error::other(e.to_string())))?
        .map_err(|e| StoreError::io("cannot sync archive objects in", &self.url, e))
    }

    /// Makes what was written to or deleted from a local destination durable ([`LocalFileSystem`] does not fsync).
    /// Object stores proper are durable when a request returns.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || super::durable::sync_filesystems([dir.as_path()]))
            .await
            .map_err(|e| StoreError::io("cannot sync archive", &self.url, io::Error::other(e.to_string())))?
            .map_err(|(p, e)| StoreError::io("cannot sync archive directory", p.display(), e))
    }

    /// Staging files of [`LocalFileSystem`] (`<path>#<digits>`) left by interrupted uploads to a local destination,
    /// as absolute paths. Empty for other destinations.
    pub async fn staging_leftovers(&self) -> io::Result<Vec<PathBuf>> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(Vec::new());
        };
        tokio::task::spawn_blocking(move || staging_files(dir))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    }
}

/// The S3 client of `url`: the usual AWS environment, conditional copies through multipart uploads (AWS S3's native
/// way, which `copy_if_not_exists` needs) unless `AWS_COPY_IF_NOT_EXISTS` says otherwise. An `http://` endpoint
/// without `AWS_ALLOW_HTTP=true` is refused here, with what to set, rather than failing later as "builder error".
fn s3_builder(url: &Url) -> Result<AmazonS3Builder, StoreError> {
    use object_store::ClientConfigKey;
    use object_store::aws::{AmazonS3ConfigKey, S3CopyIfNotExists};
    let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
    if b.get_config_value(&AmazonS3ConfigKey::CopyIfNotExists).is_none() {
        b = b.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
    }
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = b
        .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(e) = endpoint.filter(|e| e.starts_with("http://"))
        && !allow_http
    {
        return Err(StoreError::Refused(format!(
            "archive {url}: the S3 endpoint (AWS_ENDPOINT) is {e}, plain HTTP, which is refused unless \
             AWS_ALLOW_HTTP=true is set; set it for a local test server, or use an https:// endpoint"
        )));
    }
    Ok(b)
}

/// Whether the environment names AWS credentials of any kind (without them, the S3 client asks the instance metadata
/// service, whose failure would otherwise be the only error shown).
fn has_aws_credentials() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || std::env::var("AWS_SKIP_SIGNATURE").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Blocking reads of chunks an async task sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// Walks `dir` for [`LocalFileSystem`] staging files.
fn staging_files(dir: PathBuf) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `name` is a [`LocalFileSystem`] staging file name: `<anything>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, digits)) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Decodes the `%XX` escapes that `object_store` puts in key parts; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
