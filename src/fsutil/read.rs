//! Reading a whole input file with the checks a hostile path needs: only regular files (a FIFO
//! or `/dev/zero` would block or never end), and no file larger than the memory budget, checked
//! before a byte is read.

use std::io::Read;
use std::path::Path;

/// The file's bytes, refusing non-regular files and files over `crate::graph::budget`.
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let refuse = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let budget = crate::graph::budget::max_bytes();
    if meta.len() > budget {
        return Err(refuse(format!(
            "{} bytes is over the memory budget of {budget} bytes (QLAB_MAX_MEMORY)",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never take more than the budget.
    file.take(budget + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > budget {
        return Err(refuse(
            "the file grew past the memory budget while it was read".into(),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] for a text file: its bytes must be UTF-8.
pub fn read_text_bounded(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            let p = Path::new(p);
            if p.exists() {
                let err = read_bounded(p).unwrap_err();
                assert!(err.to_string().contains("not a regular file"), "{err}");
            }
        }
        let f = std::env::temp_dir().join(format!("qlab-read-{}", std::process::id()));
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(read_bounded(&f).unwrap(), b"abc");
        std::fs::remove_file(&f).ok();
    }
}
