//! Rebuild when a migration is added: `sqlx::migrate!` embeds the directory's files at
//! compile time, and without this a new `NNNN_*.sql` would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
