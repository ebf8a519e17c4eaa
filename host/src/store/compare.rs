//! Whether two copies of a segment hold the same content, at a cost bounded by the smaller of them.
//!
//! Recovery compares the copies of a segment found in two tiers (a hot file and its `.zst`, a local file and its
//! archived object, an object and its copy in the archive's trash) before it removes one. A `.zst` beside a small hot
//! file may decompress to gigabytes; comparing hashes of whole contents would decompress all of it, every scan. So:
//! copies stored alike are compared byte for byte after their sizes; a compressed copy against a plain one first by
//! the size its zstd frame header declares, then by decompressing it in bounded steps and comparing as it goes, which
//! stops at the first difference and never decompresses more than one step past the plain copy's size.

use std::io::{self, Read};

/// Bytes compared per step (and the most decompressed per step).
const STEP: usize = 256 << 10;

/// One copy to compare: a reader of its stored bytes, whether they are zstd-compressed, and their stored size.
pub struct Copy {
    pub reader: Box<dyn Read + Send>,
    pub compressed: bool,
    pub size: u64,
}

/// Why two copies could not be compared: one is not a complete zstd stream (`InvalidData`/`UnexpectedEof`), or a read
/// failed.
pub type Error = io::Error;

/// Whether `a` and `b` hold the same content (for a compressed copy, its decompressed content).
pub fn same(a: Copy, b: Copy) -> Result<bool, Error> {
    match (a.compressed, b.compressed) {
        // Stored alike: the same bytes, a complete copy of a complete file.
        (x, y) if x == y => {
            if a.size != b.size {
                return Ok(false);
            }
            equal_streams(a.reader, b.reader)
        }
        (true, false) => same_decoded(a, b),
        _ => same_decoded(b, a),
    }
}

/// Compares a compressed copy's content with a plain copy.
fn same_decoded(z: Copy, plain: Copy) -> Result<bool, Error> {
    let mut z_reader = z.reader;
    // The frame header (at most 18 bytes) may say the content size: a mismatch needs no decompression at all.
    let mut head = Vec::with_capacity(18);
    (&mut z_reader).take(18).read_to_end(&mut head)?;
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(&head)
        && declared > plain.size
    {
        return Ok(false);
    }
    let chained = io::Cursor::new(head).chain(z_reader);
    let decoder = zstd::stream::read::Decoder::new(chained).map_err(invalid)?;
    equal_streams(Box::new(Checked(decoder)), plain.reader)
}

/// A zstd decoder whose errors read as "not a complete copy".
struct Checked<R: io::BufRead>(zstd::stream::read::Decoder<'static, R>);

impl<R: io::BufRead> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(invalid)
    }
}

/// zstd reports a corrupt stream as `Other`; callers tell "not a complete copy" from I/O trouble by `InvalidData`.
fn invalid(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => e,
        _ => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether two streams yield the same bytes, stopping at the first difference.
fn equal_streams(mut a: Box<dyn Read + Send>, mut b: Box<dyn Read + Send>) -> io::Result<bool> {
    let mut x = vec![0u8; STEP];
    let mut y = vec![0u8; STEP];
    loop {
        let n = fill(&mut *a, &mut x)?;
        let m = fill(&mut *b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n < STEP {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(bytes: Vec<u8>, compressed: bool) -> Copy {
        Copy {
            size: bytes.len() as u64,
            reader: Box::new(io::Cursor::new(bytes)),
            compressed,
        }
    }

    #[test]
    fn equal_contents_are_the_same_whether_stored_plain_or_compressed() {
        let data = b"a log line\n".repeat(100_000);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert!(same(copy(data.clone(), false), copy(z.clone(), true)).unwrap());
        assert!(same(copy(z.clone(), true), copy(data.clone(), false)).unwrap());
        assert!(same(copy(z.clone(), true), copy(z, true)).unwrap());
        let mut other = data.clone();
        *other.last_mut().unwrap() = b'!';
        assert!(!same(copy(data.clone(), false), copy(other, false)).unwrap());
        assert!(!same(copy(data[1..].to_vec(), false), copy(data, false)).unwrap());
    }

    #[test]
    fn a_zst_declaring_more_than_the_hot_file_differs_without_being_decompressed() {
        // 1 GiB of zeros compresses to a few KiB; its frame header says 1 GiB.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.set_pledged_src_size(Some(1 << 30)).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        // A reader that fails past the header: proof that nothing is decompressed.
        struct HeaderOnly(io::Cursor<Vec<u8>>);
        impl Read for HeaderOnly {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.position() >= 18 {
                    return Err(io::Error::other("read past the frame header"));
                }
                let room = (18 - self.0.position() as usize).min(buf.len());
                self.0.read(&mut buf[..room])
            }
        }
        let z = Copy {
            size: bomb.len() as u64,
            reader: Box::new(HeaderOnly(io::Cursor::new(bomb))),
            compressed: true,
        };
        assert!(!same(z, copy(b"small hot file".to_vec(), false)).unwrap());
    }

    #[test]
    fn a_zst_without_a_declared_size_is_decompressed_no_further_than_the_hot_file() {
        // Streamed without a pledged size: the header declares nothing, so the decoder runs, bounded.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let z = enc.finish().unwrap();
        assert!(matches!(zstd::zstd_safe::get_frame_content_size(&z), Ok(None)));
        assert!(!same(copy(z.clone(), true), copy(vec![0u8; 1000], false)).unwrap());
        // What the comparison pulls out of the decoder: at most one step past the hot file's size.
        struct Counting<R>(R, std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl<R: Read> Read for Counting<R> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
        }
        let decoded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let decoder = zstd::stream::read::Decoder::new(io::Cursor::new(z)).unwrap();
        let plain: Box<dyn Read + Send> = Box::new(io::Cursor::new(vec![0u8; 1000]));
        assert!(!equal_streams(Box::new(Counting(decoder, decoded.clone())), plain).unwrap());
        let n = decoded.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n <= STEP, "decompressed {n} bytes of 256 MiB");
    }

    #[test]
    fn a_truncated_zst_is_not_a_complete_copy() {
        let data = b"some log line\n".repeat(10_000);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let e = same(copy(z[..z.len() / 2].to_vec(), true), copy(data, false)).unwrap_err();
        assert!(
            matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof),
            "{e}"
        );
    }
}
