//! Reading NumPy `.npz` archives (`np.savez` / `np.savez_compressed`): a zip file of `.npy`
//! members, stored or deflated. Each member is parsed by the `.npy` reader; errors name the
//! archive and the member.
//!
//! A member's declared size is checked against what deflate can produce from its compressed
//! bytes (at most ~1032:1) before anything is allocated, so a forged header cannot make qlab
//! reserve memory the file does not justify.

use super::npy::{NpyError, parse_npy, parse_npy_f64};
use crate::graph::Value;
use ndarray::ArrayD;
use std::io::Read;
use std::path::Path;

/// Deflate's largest expansion ratio, plus slack for tiny members.
const MAX_RATIO: u64 = 1032;
const SLACK: u64 = 1 << 16;

/// One member of an archive: its name without `.npy` and its raw `.npy` bytes.
#[derive(Debug, Clone)]
pub struct NpzMember {
    pub name: String,
    bytes: Vec<u8>,
    origin: String,
}

impl NpzMember {
    /// The array (floats as f32, integers as i64).
    pub fn value(&self) -> Result<Value, NpyError> {
        parse_npy(&self.bytes, &self.origin)
    }

    /// The array as f64 (exact for float64 members).
    pub fn f64(&self) -> Result<ArrayD<f64>, NpyError> {
        parse_npy_f64(&self.bytes, &self.origin)
    }
}

fn format_err(path: &str, detail: String) -> NpyError {
    NpyError::Format {
        path: path.to_string(),
        detail,
    }
}

/// Reads every member of the archive at `path`, in archive order (numpy writes them in the
/// order the arrays were given).
pub fn read_npz(path: &Path) -> Result<Vec<NpzMember>, NpyError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| NpyError::Io {
        path: shown.clone(),
        source,
    })?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(format_err(&shown, "not a regular file".into()));
    }
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format_err(&shown, format!("not a zip archive: {e}")))?;
    let mut members = Vec::with_capacity(zip.len().min(1 << 16));
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format_err(&shown, format!("member {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| format_err(&shown, format!("member {i}: {e}")))?
            .to_string();
        let (size, packed) = (entry.size(), entry.compressed_size());
        if size > packed.saturating_mul(MAX_RATIO).saturating_add(SLACK) {
            return Err(format_err(
                &shown,
                format!("member '{name}' declares {size} bytes from {packed} compressed"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format_err(&shown, format!("member '{name}': {e}")))?;
        if bytes.len() as u64 != size {
            return Err(format_err(
                &shown,
                format!(
                    "member '{name}' holds {} bytes, its header says {size}",
                    bytes.len()
                ),
            ));
        }
        let origin = format!("{shown}:{name}");
        members.push(NpzMember {
            name: name.strip_suffix(".npy").unwrap_or(&name).to_string(),
            bytes,
            origin,
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_zip_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("qlab-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.npz");
        std::fs::write(&p, b"PK\x03\x04 garbage").unwrap();
        let err = read_npz(&p).unwrap_err().to_string();
        assert!(err.contains("bad.npz") && err.contains("zip"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
