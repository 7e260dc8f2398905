//! The host's configuration: a TOML file, overridden by command-line flags.
//!
//! Every port derives from one base as GameStream does (Sunshine `nvhttp.h`,
//! `rtsp.h`, `stream.h`), so a second host on the same machine, or a test, moves all of
//! them with one `--port-base`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::input::InputConfig;

/// Where the service looks for its config file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/punktfunk/host.toml";
/// The default state directory (the systemd unit's `StateDirectory=punktfunk`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/punktfunk";
/// GameStream's HTTP port.
pub const DEFAULT_PORT_BASE: u16 = 47989;

/// An app declared in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The title clients show.
    pub title: String,
    /// The command that starts it (inside the session).
    #[serde(default)]
    pub command: Option<String>,
    /// A PNG file to use as box art.
    #[serde(default)]
    pub box_art: Option<PathBuf>,
}

/// Pairing settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairingConfig {
    /// How long a client's pairing request waits for the PIN to be entered, in seconds.
    /// Moonlight gives up after 90 s, so the default answers before that.
    pub pin_timeout_secs: u64,
    /// How long the whole exchange may take once the PIN is in, in seconds.
    pub exchange_timeout_secs: u64,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self {
            pin_timeout_secs: 80,
            exchange_timeout_secs: 30,
        }
    }
}

/// Streaming settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSettings {
    /// Video FEC parity as a percentage of data packets (Sunshine's default is 20).
    pub fec_percent: u8,
    /// Fraction of the frame interval a frame's packets are paced over.
    pub pacing_spread: f64,
    /// Offer encrypted audio (clients that ask get AES-CBC audio).
    pub audio_encryption: bool,
    /// Seconds without any client traffic after which a stream is torn down.
    pub client_timeout_secs: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            fec_percent: 20,
            pacing_spread: 0.25,
            audio_encryption: true,
            client_timeout_secs: 10,
        }
    }
}

/// The file's contents. Every field is optional; flags override the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Listen address.
    pub bind: Option<IpAddr>,
    /// Port base.
    pub port_base: Option<u16>,
    /// Host name shown to clients (defaults to the machine's).
    pub hostname: Option<String>,
    /// Pairing settings.
    #[serde(default)]
    pub pairing: PairingConfig,
    /// Apps besides the built-in Desktop.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Streaming settings.
    #[serde(default)]
    pub stream: StreamSettings,
    /// Input injection.
    #[serde(default)]
    pub input: InputConfig,
}

/// Flags that override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// The TOML config file [default: /etc/punktfunk/host.toml if present].
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// SQLite store and host identity [default: /var/lib/punktfunk].
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Listen address [default: 0.0.0.0].
    #[arg(long, value_name = "ADDR", global = true)]
    pub bind: Option<IpAddr>,
    /// Every port derives from this one as in GameStream [default: 47989].
    #[arg(long, value_name = "N", global = true)]
    pub port_base: Option<u16>,
}

/// The ports of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// nvhttp, plain HTTP (base).
    pub http: u16,
    /// nvhttp over TLS (base - 5).
    pub https: u16,
    /// Web console and management API (base + 1).
    pub web: u16,
    /// RTSP (base + 21).
    pub rtsp: u16,
    /// Video UDP (base + 9).
    pub video: u16,
    /// Control UDP / ENet (base + 10).
    pub control: u16,
    /// Audio UDP (base + 11).
    pub audio: u16,
}

impl Ports {
    /// Derives every port from `base`; fails if one falls outside 1..=65535.
    pub fn from_base(base: u16) -> Result<Self> {
        let at = |offset: i32| -> Result<u16> {
            let p = i32::from(base) + offset;
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("port base {base} puts a port at {p}, outside 1..=65535"))
        };
        Ok(Self {
            http: at(0)?,
            https: at(-5)?,
            web: at(1)?,
            video: at(9)?,
            control: at(10)?,
            audio: at(11)?,
            rtsp: at(21)?,
        })
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// State directory.
    pub state_dir: PathBuf,
    /// Listen address.
    pub bind: IpAddr,
    /// Port base.
    pub port_base: u16,
    /// Derived ports.
    pub ports: Ports,
    /// Host name override.
    pub hostname: Option<String>,
    /// Pairing settings.
    pub pairing: PairingConfig,
    /// Apps from the file.
    pub apps: Vec<AppConfig>,
    /// Streaming settings.
    pub stream: StreamSettings,
    /// Input injection.
    pub input: InputConfig,
}

impl Config {
    /// Loads the file (explicit `--config`, else the default path if it exists) and
    /// applies the flags.
    pub fn load(args: &ConfigArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                Some(read_file(Path::new(DEFAULT_CONFIG))?)
            }
            None => None,
        }
        .unwrap_or_default();
        Self::resolve(file, args)
    }

    /// Merges a parsed file with flags.
    pub fn resolve(file: FileConfig, args: &ConfigArgs) -> Result<Self> {
        let port_base = args
            .port_base
            .or(file.port_base)
            .unwrap_or(DEFAULT_PORT_BASE);
        if file.pairing.pin_timeout_secs == 0 || file.pairing.exchange_timeout_secs == 0 {
            bail!("pairing timeouts must be at least one second");
        }
        if !(0.0..=1.0).contains(&file.stream.pacing_spread) {
            bail!("stream.pacing_spread must be between 0 and 1");
        }
        if file.stream.fec_percent > 100 {
            bail!("stream.fec_percent must be at most 100");
        }
        if file.stream.client_timeout_secs == 0 {
            bail!("stream.client_timeout_secs must be at least one second");
        }
        let mut titles = std::collections::HashSet::new();
        for app in &file.apps {
            if app.title.trim().is_empty() {
                bail!("an app in the config file has an empty title");
            }
            if !titles.insert(app.title.to_lowercase()) {
                bail!("the config file declares the app \"{}\" twice", app.title);
            }
        }
        Ok(Self {
            state_dir: args
                .state_dir
                .clone()
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port_base,
            ports: Ports::from_base(port_base)?,
            hostname: file.hostname,
            pairing: file.pairing,
            apps: file.apps,
            stream: file.stream,
            input: file.input,
        })
    }

    /// How long a pairing waits for its PIN.
    pub fn pin_timeout(&self) -> Duration {
        Duration::from_secs(self.pairing.pin_timeout_secs)
    }

    /// How long the rest of a pairing may take.
    pub fn exchange_timeout(&self) -> Duration {
        Duration::from_secs(self.pairing.exchange_timeout_secs)
    }

    /// The SQLite store's path.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("punktfunk.db")
    }

    /// Where the recording input backend writes by default.
    pub fn input_recording(&self) -> PathBuf {
        self.state_dir.join("input-events.jsonl")
    }

    /// The local control socket (`punktfunk-host pin` talks to it).
    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join("control.sock")
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_derive_from_the_base_like_gamestream() {
        let p = Ports::from_base(47989).unwrap();
        assert_eq!(
            (p.http, p.https, p.web, p.video, p.control, p.audio, p.rtsp),
            (47989, 47984, 47990, 47998, 47999, 48000, 48010)
        );
        assert!(Ports::from_base(3).is_err());
        assert!(Ports::from_base(65530).is_err());
    }

    #[test]
    fn flags_override_the_file_and_bad_files_are_clear_errors() {
        let file: FileConfig = toml::from_str(
            r#"
            port_base = 40000
            hostname = "living-room"
            [pairing]
            pin_timeout_secs = 5
            [[apps]]
            title = "Steam"
            command = "steam -gamepadui"
            "#,
        )
        .unwrap();
        let args = ConfigArgs {
            port_base: Some(41000),
            ..Default::default()
        };
        let c = Config::resolve(file, &args).unwrap();
        assert_eq!(c.port_base, 41000);
        assert_eq!(c.ports.https, 40995);
        assert_eq!(c.pairing.pin_timeout_secs, 5);
        assert_eq!(c.pairing.exchange_timeout_secs, 30);
        assert_eq!(c.apps[0].command.as_deref(), Some("steam -gamepadui"));
        assert!(toml::from_str::<FileConfig>("bogus_key = 1").is_err());
        let dup: FileConfig =
            toml::from_str("[[apps]]\ntitle = \"A\"\n[[apps]]\ntitle = \"a\"\n").unwrap();
        assert!(Config::resolve(dup, &ConfigArgs::default()).is_err());
    }
}
