//! Build-time inputs of punktfunk-host:
//!
//! - `sqlx::migrate!` embeds `migrations/`; without a rerun trigger a new `NNNN_*.sql`
//!   would not cause a rebuild.
//! - The web console's built files (`web/dist`, from `npm run build`, or the directory
//!   in `PUNKTFUNK_WEB_DIST`) are embedded so the binary serves the console without
//!   anything installed beside it. When they have not been built, a placeholder page
//!   that says how to build them is embedded instead: the Rust build never needs Node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PUNKTFUNK_WEB_DIST");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../web");
    let dist = std::env::var_os("PUNKTFUNK_WEB_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| web.join("dist"));

    let mut code = String::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        let mut found = Vec::new();
        files(&dist, &mut found);
        found.sort();
        code.push_str("/// Whether the real console was built into this binary.\n");
        code.push_str("pub const BUILT: bool = true;\n");
        code.push_str("/// The console's files: path relative to the web root, contents.\n");
        code.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
        for path in found {
            let rel = path
                .strip_prefix(&dist)
                .expect("found under dist")
                .to_string_lossy()
                .replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path);
            writeln!(
                code,
                "    ({rel:?}, include_bytes!({:?})),",
                abs.display().to_string()
            )
            .expect("writing to a String");
        }
        code.push_str("];\n");
    } else {
        // Watching the missing dist itself would rerun this script on every build;
        // watching web/ notices when `npm run build` creates it.
        if web.is_dir() {
            println!("cargo:rerun-if-changed={}", web.display());
        }
        println!(
            "cargo:warning=web console not built ({} has no index.html): embedding a \
             placeholder page; run scripts/build-web first to embed the console",
            dist.display()
        );
        let placeholder = manifest.join("src/mgmt/placeholder.html");
        code.push_str("/// Whether the real console was built into this binary.\n");
        code.push_str("pub const BUILT: bool = false;\n");
        code.push_str("/// The console's files: path relative to the web root, contents.\n");
        writeln!(
            code,
            "pub static FILES: &[(&str, &[u8])] = &[(\"index.html\", include_bytes!({:?}))];",
            placeholder.display().to_string()
        )
        .expect("writing to a String");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("web_assets.rs"), code).expect("writing web_assets.rs");
}
