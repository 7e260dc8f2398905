//! punktfunk-host: the streaming host.
//!
//! This binary is the thin driver around `punktfunk-core`: it parses the command line,
//! sets up logging and runs the I/O loops. Protocol logic lives in the core.

mod clock;
mod native;
mod net;
mod store;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "punktfunk-host",
    version,
    about = "punktfunk game-streaming host"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream synthetic frames through the native punktfunk/1 data plane over UDP on
    /// 127.0.0.1 (FEC, AES-GCM, pacing, batched sends) and report what arrived. This is
    /// the demo default until the streaming services land.
    Loopback(native::loopback::LoopbackArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Loopback(args)) => args,
        None => native::loopback::LoopbackArgs::default(),
    };
    native::loopback::run(&args)?;
    Ok(())
}
