//! punktfunk-host: the streaming host.
//!
//! This binary is the thin driver around `punktfunk-core`: it parses the command line,
//! sets up logging and runs the I/O loops. Protocol logic lives in the core.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use punktfunk_host::capture::SourceSetting;
use punktfunk_host::config::{Config, ConfigArgs};
use punktfunk_host::control_socket::{self, ControlRequest};
use punktfunk_host::{admin, logging, native, serve};

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
    /// Run the host: GameStream pairing and app control for Moonlight clients, and the
    /// management API. The default command.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// What streams show when no display session runs the app: "test-pattern", or
        /// "pipewire:<node name or id>" for an existing PipeWire Video/Source node
        /// [default: `[stream] source` in the config, else test-pattern].
        #[arg(long, value_name = "SOURCE")]
        source: Option<SourceSetting>,
    },
    /// Enter the PIN a Moonlight client shows, to pair it with the running host.
    Pin {
        /// The PIN Moonlight shows (4 digits). Without it, lists the devices waiting.
        pin: Option<String>,
        /// A name for the device.
        #[arg(long)]
        name: Option<String>,
        /// Which waiting request the PIN is for (see the list); needed when several
        /// devices wait at once.
        #[arg(long)]
        request: Option<u64>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Arm pairing for a native punktfunk/1 client and print the PIN to type on it.
    PairNative {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Show what the running host is doing: the launched app and the live stream (JSON).
    Status {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage paired devices.
    Clients {
        #[command(subcommand)]
        command: admin::ClientsCommand,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage the apps clients can launch.
    Apps {
        #[command(subcommand)]
        command: admin::AppsCommand,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage the web console's admin account.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Check what this machine can do for real game sessions (compositors, session
    /// user, PipeWire, GPU, encoders, uinput, ports); exits non-zero when no real
    /// session can run.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Stream synthetic frames through the native punktfunk/1 data plane over UDP on
    /// 127.0.0.1 (FEC, AES-GCM, pacing, batched sends) and report what arrived.
    Loopback(native::loopback::LoopbackArgs),
}

fn main() -> std::process::ExitCode {
    punktfunk_host::net::listener::return_large_allocations();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), not a backtrace: this is what a person
            // typing `punktfunk-host pin` sees.
            logging::say(format_args!("punktfunk-host: {e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    logging::init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve {
        config: ConfigArgs::default(),
        source: None,
    }) {
        Command::Serve { config, source } => {
            let mut config = Config::load(&config)?;
            if let Some(source) = source {
                config.stream.source = source;
            }
            runtime()?.block_on(serve::run(config))
        }
        Command::Pin {
            pin,
            name,
            request,
            config,
        } => {
            let config = Config::load(&config)?;
            let req = match pin {
                Some(pin) => ControlRequest::Pin { pin, name, request },
                None => ControlRequest::Pairings,
            };
            // The PIN's outcome arrives once the client finishes the exchange.
            let wait = config.exchange_timeout() + Duration::from_secs(5);
            let reply = runtime()?.block_on(control_socket::request(
                &config.control_socket(),
                &req,
                wait,
            ))?;
            if !reply.ok {
                bail!("{}", reply.message);
            }
            println!("{}", reply.message);
            Ok(())
        }
        Command::PairNative { config } => {
            let config = Config::load(&config)?;
            let reply = runtime()?.block_on(control_socket::request(
                &config.control_socket(),
                &ControlRequest::PairNative,
                Duration::from_secs(10),
            ))?;
            if !reply.ok {
                bail!("{}", reply.message);
            }
            println!("{}", reply.message);
            Ok(())
        }
        Command::Status { config } => {
            let config = Config::load(&config)?;
            let reply = runtime()?.block_on(control_socket::request(
                &config.control_socket(),
                &ControlRequest::Status,
                Duration::from_secs(10),
            ))?;
            println!("{}", reply.message);
            Ok(())
        }
        Command::Clients { command, config } => {
            runtime()?.block_on(admin::clients(&Config::load(&config)?, command))
        }
        Command::Apps { command, config } => {
            runtime()?.block_on(admin::apps(&Config::load(&config)?, command))
        }
        Command::Admin { command, config } => {
            runtime()?.block_on(admin::admin(&Config::load(&config)?, command))
        }
        Command::Doctor { config } => {
            let config = Config::load(&config)?;
            let rows = punktfunk_host::doctor::checks(&config);
            print!("{}", punktfunk_host::doctor::table(&rows));
            if punktfunk_host::doctor::real_session_possible(&rows) {
                println!("a real session can run here");
                Ok(())
            } else {
                bail!("no real session can run here: launches would stream the test pattern")
            }
        }
        Command::Loopback(args) => native::loopback::run(&args).map(drop),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pf-tokio")
        .build()?)
}
