//! Shared by the benches: criterion set-up and the summary table printed at the end.
//!
//! Criterion reports each benchmark on its own; the table puts the figures side by side
//! with their ratio to a baseline measured in the same run, which is the number that
//! survives a noisy shared machine.

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// Where criterion writes its estimates for this build.
pub fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("criterion")
}

/// Criterion with short runs: a full `cargo bench -p punktfunk-core` takes a few minutes.
pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&output_dir())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// One line of the summary table.
pub struct Row {
    /// What was measured.
    pub label: String,
    /// Criterion's `group/id` path.
    pub path: String,
    /// Bytes processed per iteration.
    pub bytes: u64,
    /// Label of the row this one is compared with, if any.
    pub baseline: Option<String>,
}

fn median_ns(path: &str) -> Option<f64> {
    let file = output_dir().join(path).join("new/estimates.json");
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints the table, unless criterion ran in test mode (no estimates written).
pub fn print_table(title: &str, rows: &[Row]) {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let measured: Vec<(&Row, f64)> = rows
        .iter()
        .filter_map(|r| median_ns(&r.path).map(|ns| (r, ns)))
        .collect();
    if measured.is_empty() {
        return;
    }
    let gbps = |r: &Row, ns: f64| r.bytes as f64 / ns;
    println!("\n{title}");
    println!(
        "| {:<48} | {:>12} | {:>9} | {:>22} |",
        "benchmark", "median", "GB/s", "vs baseline"
    );
    println!("|{:-<50}|{:->14}|{:->11}|{:->24}|", "", "", "", "");
    for (r, ns) in &measured {
        let ratio = r
            .baseline
            .as_ref()
            .and_then(|b| measured.iter().find(|(o, _)| &o.label == b))
            .map(|(o, ons)| format!("{:.2}x {}", gbps(r, *ns) / gbps(o, *ons), o.label))
            .unwrap_or_default();
        let time = if *ns >= 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else if *ns >= 1e3 {
            format!("{:.2} us", ns / 1e3)
        } else {
            format!("{ns:.0} ns")
        };
        println!(
            "| {:<48} | {:>12} | {:>9.2} | {:>22} |",
            r.label,
            time,
            gbps(r, *ns),
            ratio
        );
    }
}
