//! Hashing content as it streams by, optionally through zstd (checking its frame checksums and that the stream ends on
//! a complete frame): how an upload is verified by reading it back.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::Content;

/// Hashes content as it streams by, optionally decompressing it first (zstd, checking its frame checksums and that
/// the stream ends on a complete frame).
pub(crate) struct Digester {
    inner: DigestInner,
}

enum DigestInner {
    Raw(HashSink),
    Zstd(Box<zstd::stream::write::Decoder<'static, HashSink>>),
    Failed(io::Error),
}

#[derive(Default)]
struct HashSink {
    sha: Sha256,
    size: u64,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HashSink {
    fn content(self) -> Content {
        Content {
            size: self.size,
            sha256: self.sha.finalize().into(),
        }
    }
}

impl Digester {
    pub(crate) fn new(decompress: bool) -> Self {
        let inner = if decompress {
            match zstd::stream::write::Decoder::new(HashSink::default()) {
                Ok(d) => DigestInner::Zstd(Box::new(d)),
                Err(e) => DigestInner::Failed(e),
            }
        } else {
            DigestInner::Raw(HashSink::default())
        };
        Digester { inner }
    }

    pub(crate) fn update(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            DigestInner::Raw(h) => h.write_all(buf),
            DigestInner::Zstd(d) => d.write_all(buf).map_err(invalid),
            DigestInner::Failed(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    pub(crate) fn finish(self) -> io::Result<Content> {
        match self.inner {
            DigestInner::Raw(h) => Ok(h.content()),
            DigestInner::Zstd(d) => Ok(d.finish().map_err(invalid)?.content()),
            DigestInner::Failed(e) => Err(e),
        }
    }
}

/// zstd reports a corrupt stream as `Other`; callers tell "not a complete copy" from I/O trouble by `InvalidData`.
fn invalid(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => e,
        _ => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// Hashes everything `reader` yields, optionally decompressing it (see [`Digester`]).
pub(crate) fn digest_reader(mut reader: impl Read, decompress: bool) -> io::Result<Content> {
    let mut d = Digester::new(decompress);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        d.update(&buf[..n])?;
    }
    d.finish()
}
