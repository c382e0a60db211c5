//! Finding and reading import files: paths given on the command line, directories walked
//! recursively in a stable order.

use std::path::{Path, PathBuf};

use crate::{Payload, Unit};

/// Files to import under `paths`: each file given explicitly, and every `.json`, `.ndjson`,
/// `.jsonl`, `.hl7` and `.er7` file under each directory, sorted by path so that runs are
/// reproducible.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(path)
                .follow_links(true)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && is_importable(e.path()))
                .map(|e| e.into_path())
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_importable(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("json" | "ndjson" | "jsonl" | "hl7" | "er7")
    )
}

/// Whether `bytes` are HL7 v2 (ER7) rather than JSON: they start, after a byte order mark and
/// white space, with a message header (MSH) or a batch header (FHS, BHS). Decided by content,
/// whatever the file is called.
pub fn is_hl7(bytes: &[u8]) -> bool {
    let text = bytes
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    ["MSH", "FHS", "BHS"].iter().any(|h| {
        text.starts_with(h.as_bytes()) && text.len() > 3 && !text[3].is_ascii_alphanumeric()
    })
}

/// Read one file into a [`Unit`]: NDJSON by extension, JSON otherwise.
pub fn read_unit(path: &Path) -> std::io::Result<Unit> {
    let bytes = std::fs::read(path)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let payload = match ext.as_deref() {
        Some("ndjson" | "jsonl") => Payload::Ndjson(bytes),
        _ => Payload::Json(bytes),
    };
    Ok(Unit {
        name: path.display().to_string(),
        kind: "file",
        payload,
    })
}
