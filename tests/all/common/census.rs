//! The content census the crash, fault and archive tests take: every copy of every content under a data root and its
//! archive, with where it is (hot, compressed, archived, trash) and its content (a `.zst` decompressed: a visible
//! `.zst` that does not decompress is a failure), and every temporary or staging file apart. The engine area's own
//! files are no content.

use std::path::{Path, PathBuf};

/// One copy: the segment's name, its place, its (decompressed) content.
pub type Copy = (String, &'static str, Vec<u8>);

/// Every copy under `root` and `archive`, and every temporary or staging file.
pub fn take(root: &Path, archive: &Path) -> (Vec<Copy>, Vec<PathBuf>) {
    let mut copies = Vec::new();
    let mut temps = Vec::new();
    for (base, archived) in [(root, false), (archive, true)] {
        if !base.exists() {
            continue;
        }
        for (full_rel, raw) in super::files_under(base) {
            if super::is_engine_file(&full_rel) {
                continue;
            }
            let path = base.join(&full_rel);
            let file_name = full_rel.rsplit('/').next().unwrap();
            let temp = file_name.starts_with('.') && file_name.ends_with(".retention-tmp");
            let staging = archived
                && (full_rel.starts_with(".retention-tmp/")
                    || file_name
                        .rsplit_once('#')
                        .is_some_and(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())));
            if temp || staging {
                temps.push(path);
                continue;
            }
            let mut rel = full_rel.as_str();
            // A trash entry, of the dataset or of its archive: `.retention-trash/<batch>/<path as it was>`.
            let trashed = rel.starts_with(".retention-trash/");
            if trashed {
                rel = rel.splitn(3, '/').nth(2).unwrap();
            }
            let (name, content) = match rel.strip_suffix(".zst") {
                Some(name) => {
                    let content = zstd::decode_all(&raw[..])
                        .unwrap_or_else(|e| panic!("visible {} is not a complete zstd file: {e}", path.display()));
                    (name, content)
                }
                None => (rel, raw),
            };
            let place = match (archived, trashed, rel.ends_with(".zst")) {
                (_, true, _) => "trash",
                (true, false, _) => "archived",
                (false, false, true) => "compressed",
                (false, false, false) => "hot",
            };
            copies.push((name.to_string(), place, content));
        }
    }
    (copies, temps)
}
