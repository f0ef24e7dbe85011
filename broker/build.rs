//! Embeds the web console's files (`console/`) into the binary: writes a table of
//! `(path under /assets/, bytes, ETag)` for `src/console/assets.rs` to include. The ETag is
//! FNV-1a of the file's bytes.

use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    // A directory is scanned whole for changes; `include_bytes!` makes each file a dependency.
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under the console directory");
        let rel = rel.to_str().expect("console file names are UTF-8").replace('\\', "/");
        let bytes = std::fs::read(file).expect("reading a console file");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let etag = format!("\"{hash:016x}\"");
        table.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?}), {etag:?}),\n",
            file.display().to_string()
        ));
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("console_assets.rs"), table).expect("writing the asset table");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            out.push(path);
        }
    }
}
