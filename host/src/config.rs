//! The host's configuration: TOML files, overridden by command-line flags.
//!
//! Without `--config`, the service reads layers, each overriding the one before:
//! 1. `/usr/share/punktfunk/host.toml`: the vendor defaults the image or sysext ships
//!    (read-only `/usr`, replaced on every update);
//! 2. `/etc/punktfunk/host.toml`: the machine's own settings;
//! 3. `/etc/punktfunk/host.toml.d/*.toml` in name order: drop-ins, for settings that
//!    tools or provisioning add without editing a file a person owns.
//!
//! Tables merge key by key (a drop-in with `[pairing] pin_timeout_secs = 60` keeps the
//! other pairing keys); any other value, arrays such as `[[apps]]` included, is replaced
//! whole by the later layer. Missing files are skipped; a file that exists but does not
//! parse, or has an unknown key, is an error naming that file. `--config FILE` reads
//! exactly that one file and nothing else, so a test or a second host is reproducible.
//!
//! Every port derives from one base as GameStream does (Sunshine `nvhttp.h`,
//! `rtsp.h`, `stream.h`), so a second host on the same machine, or a test, moves all of
//! them with one `--port-base`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::display::{DisplayConfig, SessionConfig};
use crate::input::InputConfig;

/// The vendor defaults, shipped read-only in `/usr` (the first layer).
pub const VENDOR_CONFIG: &str = "/usr/share/punktfunk/host.toml";
/// The machine's config file (the second layer).
pub const DEFAULT_CONFIG: &str = "/etc/punktfunk/host.toml";
/// Drop-ins, `*.toml` in name order (the last layers).
pub const DROPIN_DIR: &str = "/etc/punktfunk/host.toml.d";
/// The highest FEC share a stream starts with (`[stream] fec_percent`, the web
/// console's setting): above it parity costs more than the loss it repairs. The one
/// limit: the config, the console's API and the settings all check against it (the
/// adaptive controller's own ceiling is `fec_max_percent`).
pub const MAX_FEC_PERCENT: u8 = 80;
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

/// Who may reach the web console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebAccess {
    /// Loopback, private (RFC 1918), link-local, unique-local and CGNAT (Tailscale)
    /// addresses, plus `allowed_networks`.
    #[default]
    Lan,
    /// Any address. Only for a box behind something else that filters.
    Any,
}

/// Web console settings (`[web]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Which peers may connect: "lan" (default) or "any".
    pub access: WebAccess,
    /// Extra networks (CIDR, e.g. "203.0.113.0/24") allowed besides the LAN.
    pub allowed_networks: Vec<crate::net::cidr::Cidr>,
    /// Extra host names the console may be reached by (besides IP addresses,
    /// localhost, the host name and `<hostname>.local/.lan/.home.arpa`). Requests naming
    /// any other host are refused, which is what defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Serve the console's files from this directory instead of the ones built into
    /// the binary [default: /usr/share/punktfunk/web if it has an index.html].
    pub assets_dir: Option<PathBuf>,
    /// Failed logins (or setup codes) from one address before it is locked out.
    pub max_login_failures: u32,
    /// How long a lockout lasts, and the window failures are counted in, in seconds.
    pub lockout_secs: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            access: WebAccess::Lan,
            allowed_networks: Vec::new(),
            allowed_hosts: Vec::new(),
            assets_dir: None,
            max_login_failures: 5,
            lockout_secs: 15 * 60,
        }
    }
}

/// How clients find the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Announce `_nvstream._tcp` over mDNS on every LAN interface, so Moonlight lists
    /// the host without typing its address.
    pub mdns: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { mdns: true }
    }
}

/// Streaming settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSettings {
    /// Video FEC parity a stream starts with, percent of data packets (Sunshine's
    /// fixed default is 20); adaptive FEC then moves it within the bounds below.
    pub fec_percent: u8,
    /// Least parity adaptive FEC uses, on a clean link.
    pub fec_min_percent: u8,
    /// Most parity adaptive FEC uses under loss (up to 255; the video bitrate falls so
    /// video plus parity stays within the client's bitrate). `fec_min_percent =
    /// fec_max_percent` keeps FEC fixed.
    pub fec_max_percent: u8,
    /// Pad x264's output to the bitrate with filler (hard CBR): for link tests, where
    /// a simple picture must still load the link at the configured bitrate.
    pub x264_filler: bool,
    /// Let a source that can paint YUV itself (the test pattern) hand over NV12 in the
    /// client's colour matrix, so the host converts nothing. `false` keeps it BGRx, as
    /// a compositor's buffer is, so streams pay the conversion a game's stream would.
    pub yuv_source: bool,
    /// Fraction of the frame interval a frame's packets are paced over.
    pub pacing_spread: f64,
    /// Offer encrypted audio (clients that ask get AES-CBC audio).
    pub audio_encryption: bool,
    /// Ask for encrypted video (AES-GCM per packet): every client that supports it
    /// then encrypts, so nobody on the LAN can watch. `false` streams video in
    /// plaintext, for a trusted LAN where the CPU time matters more.
    pub video_encryption: bool,
    /// Seconds without any client traffic after which a stream is torn down.
    pub client_timeout_secs: u64,
    /// What streams show when the app was not launched in a display session:
    /// `"test-pattern"` (the default) or `"pipewire:<node name or id>"`, an existing
    /// PipeWire Video/Source node. `serve --source` overrides it.
    pub source: crate::capture::SourceSetting,
    /// What streams sound like: `"session"` (the default: the display session's own
    /// sink, what the app plays; the demo tone where no display session runs),
    /// `"tone"`, or `"pipewire:<node name or id>"`, an existing Audio/Sink (captured
    /// from its monitor) or Audio/Source.
    pub audio_source: crate::audio::AudioSourceSetting,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            fec_percent: 20,
            fec_min_percent: 10,
            fec_max_percent: 150,
            x264_filler: false,
            yuv_source: true,
            pacing_spread: 0.25,
            audio_encryption: true,
            video_encryption: true,
            client_timeout_secs: 10,
            source: crate::capture::SourceSetting::TestPattern,
            audio_source: crate::audio::AudioSourceSetting::Session,
        }
    }
}

/// The native punktfunk/1 control plane (`[native]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NativeSettings {
    /// UDP port of the QUIC control plane (0 picks a free one).
    pub port: u16,
    /// Accept unpaired clients and pin their certificate on first use. Off by default:
    /// anyone on the network could then stream.
    pub allow_tofu: bool,
    /// Lowest FEC percentage a mode may use.
    pub fec_min_percent: u8,
    /// Highest FEC percentage a mode may use (adaptive FEC stays within these bounds).
    pub fec_max_percent: u8,
    /// The title of the catalog app a native client's session runs (in its own
    /// display session at the client's mode, as a Moonlight launch would). Unset: the
    /// catalog's first app, the built-in Desktop (an empty desktop).
    pub app: Option<String>,
}

impl Default for NativeSettings {
    fn default() -> Self {
        Self {
            port: crate::native::quic::DEFAULT_PORT,
            allow_tofu: false,
            fec_min_percent: 5,
            fec_max_percent: 50,
            app: None,
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
    /// Web console settings.
    #[serde(default)]
    pub web: WebConfig,
    /// Streaming settings.
    #[serde(default)]
    pub stream: StreamSettings,
    /// Discovery (mDNS).
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Input injection.
    #[serde(default)]
    pub input: InputConfig,
    /// The native protocol.
    #[serde(default)]
    pub native: NativeSettings,
    /// The compositor sessions run in.
    #[serde(default)]
    pub display: DisplayConfig,
    /// Who sessions run as.
    #[serde(default)]
    pub session: SessionConfig,
}

/// Flags that override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Read only this TOML file [default: /usr/share/punktfunk/host.toml, then
    /// /etc/punktfunk/host.toml, then /etc/punktfunk/host.toml.d/*.toml, those present].
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
    /// UDP port of the native punktfunk/1 control plane [default: 9777].
    #[arg(long, value_name = "PORT", global = true)]
    pub native_port: Option<u16>,
    /// Trust native clients on first use, without a PIN (opt-in; advertised to clients).
    #[arg(long, global = true)]
    pub allow_tofu: bool,
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
    /// Whether the port base came from a flag or the file (else the web console's
    /// stored setting may move it).
    pub port_base_explicit: bool,
    /// Derived ports.
    pub ports: Ports,
    /// Host name override.
    pub hostname: Option<String>,
    /// Pairing settings.
    pub pairing: PairingConfig,
    /// Apps from the file.
    pub apps: Vec<AppConfig>,
    /// Web console settings.
    pub web: WebConfig,
    /// Streaming settings.
    pub stream: StreamSettings,
    /// Discovery (mDNS).
    pub discovery: DiscoveryConfig,
    /// Input injection.
    pub input: InputConfig,
    /// The native protocol.
    pub native: NativeSettings,
    /// The compositor sessions run in.
    pub display: DisplayConfig,
    /// Who sessions run as.
    pub session: SessionConfig,
}

impl Config {
    /// Loads the file (explicit `--config`, else the layered defaults) and applies the
    /// flags.
    pub fn load(args: &ConfigArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => ConfigLayers::system().load()?,
        };
        Self::resolve(file, args)
    }

    /// Merges a parsed file with flags.
    pub fn resolve(file: FileConfig, args: &ConfigArgs) -> Result<Self> {
        let port_base_explicit = args.port_base.or(file.port_base).is_some();
        let port_base = args
            .port_base
            .or(file.port_base)
            .unwrap_or(DEFAULT_PORT_BASE);
        if file.web.max_login_failures == 0 || file.web.lockout_secs == 0 {
            bail!("[web] max_login_failures and lockout_secs must be at least 1");
        }
        if file.pairing.pin_timeout_secs == 0 || file.pairing.exchange_timeout_secs == 0 {
            bail!("pairing timeouts must be at least one second");
        }
        if !(0.0..=1.0).contains(&file.stream.pacing_spread) {
            bail!("stream.pacing_spread must be between 0 and 1");
        }
        if file.stream.fec_min_percent > file.stream.fec_max_percent {
            bail!("[stream] needs fec_min_percent <= fec_max_percent");
        }
        if file.stream.fec_percent > MAX_FEC_PERCENT {
            bail!("stream.fec_percent must be at most {MAX_FEC_PERCENT}");
        }
        if file.native.fec_min_percent > file.native.fec_max_percent
            || file.native.fec_max_percent > 100
        {
            bail!("[native] needs fec_min_percent <= fec_max_percent <= 100");
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
            let fields = [Some(&app.title), app.command.as_ref()];
            if fields
                .into_iter()
                .flatten()
                .any(|f| f.chars().any(char::is_control))
            {
                bail!(
                    "the app \"{}\" in the config file has a control character (a newline?) in its title or command",
                    app.title.escape_debug()
                );
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
            port_base_explicit,
            ports: Ports::from_base(port_base)?,
            hostname: file.hostname,
            pairing: file.pairing,
            apps: file.apps,
            web: file.web,
            stream: file.stream,
            discovery: file.discovery,
            input: file.input,
            native: NativeSettings {
                port: args.native_port.unwrap_or(file.native.port),
                allow_tofu: args.allow_tofu || file.native.allow_tofu,
                ..file.native
            },
            display: file.display,
            session: file.session,
        })
    }

    /// Applies the port base stored by the web console's settings page, unless a flag
    /// or the config file set one (those win, so a broken setting can always be
    /// overridden from the command line).
    pub fn with_stored_port_base(mut self, stored: Option<u16>) -> Result<Self> {
        if let Some(base) = stored.filter(|_| !self.port_base_explicit) {
            self.ports = Ports::from_base(base)
                .context("the port base stored in the settings is unusable")?;
            self.port_base = base;
        }
        Ok(self)
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
    let table = read_table(path)?;
    FileConfig::deserialize(table)
        .with_context(|| format!("parsing config file {}", path.display()))
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    // Check each layer on its own, so an unknown key is reported with its file.
    FileConfig::deserialize(table.clone())
        .with_context(|| format!("parsing config file {}", path.display()))?;
    Ok(table)
}

/// Where the layered configuration comes from (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLayers {
    /// Vendor defaults.
    pub vendor: PathBuf,
    /// The machine's file.
    pub admin: PathBuf,
    /// Drop-in directory.
    pub dropins: PathBuf,
}

impl ConfigLayers {
    /// The paths the service uses.
    pub fn system() -> Self {
        Self {
            vendor: PathBuf::from(VENDOR_CONFIG),
            admin: PathBuf::from(DEFAULT_CONFIG),
            dropins: PathBuf::from(DROPIN_DIR),
        }
    }

    /// The files that exist, in the order they apply.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = [&self.vendor, &self.admin]
            .into_iter()
            .filter(|p| p.exists())
            .cloned()
            .collect();
        match std::fs::read_dir(&self.dropins) {
            Ok(entries) => {
                let mut dropins = Vec::new();
                for entry in entries {
                    let path = entry
                        .with_context(|| format!("listing {}", self.dropins.display()))?
                        .path();
                    if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                        dropins.push(path);
                    }
                }
                dropins.sort();
                files.extend(dropins);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("listing {}", self.dropins.display()));
            }
        }
        Ok(files)
    }

    /// Reads and merges every layer present (none: the built-in defaults).
    pub fn load(&self) -> Result<FileConfig> {
        let mut merged = toml::Table::new();
        let files = self.files()?;
        for path in &files {
            merge_tables(&mut merged, read_table(path)?);
        }
        FileConfig::deserialize(merged).with_context(|| {
            let names: Vec<_> = files.iter().map(|p| p.display().to_string()).collect();
            format!("merging config files {}", names.join(", "))
        })
    }
}

/// Overlays `top` onto `base`: tables merge recursively, anything else is replaced.
fn merge_tables(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge_tables(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
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
    fn the_stream_source_is_the_test_pattern_unless_the_file_names_a_pipewire_node() {
        use crate::capture::{NodeTarget, SourceSetting};
        let none: FileConfig = toml::from_str("[stream]\nfec_percent = 10\n").unwrap();
        assert_eq!(none.stream.source, SourceSetting::TestPattern);
        let named: FileConfig =
            toml::from_str("[stream]\nsource = \"pipewire:gamescope\"\n").unwrap();
        assert_eq!(
            named.stream.source,
            SourceSetting::PipeWire(NodeTarget::Name("gamescope".into()))
        );
        let err = toml::from_str::<FileConfig>("[stream]\nsource = \"v4l2:/dev/video0\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipewire:<node name or id>"), "{err}");
    }

    #[test]
    fn the_audio_source_is_the_session_unless_the_file_says_otherwise() {
        use crate::audio::AudioSourceSetting;
        use crate::capture::NodeTarget;
        let none: FileConfig = toml::from_str("[stream]\nfec_percent = 10\n").unwrap();
        assert_eq!(none.stream.audio_source, AudioSourceSetting::Session);
        for (text, want) in [
            ("tone", AudioSourceSetting::Tone),
            ("session", AudioSourceSetting::Session),
            (
                "pipewire:alsa_output.usb",
                AudioSourceSetting::PipeWire(NodeTarget::Name("alsa_output.usb".into())),
            ),
        ] {
            let file: FileConfig =
                toml::from_str(&format!("[stream]\naudio_source = \"{text}\"\n")).unwrap();
            assert_eq!(file.stream.audio_source, want);
        }
        let err = toml::from_str::<FileConfig>("[stream]\naudio_source = \"alsa\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"session\", \"tone\""), "{err}");
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
        // One FEC limit: the config refuses what the console would refuse.
        let max = format!("[stream]\nfec_percent = {MAX_FEC_PERCENT}\n");
        let over = format!("[stream]\nfec_percent = {}\n", MAX_FEC_PERCENT + 1);
        assert!(Config::resolve(toml::from_str(&max).unwrap(), &ConfigArgs::default()).is_ok());
        let err = Config::resolve(toml::from_str(&over).unwrap(), &ConfigArgs::default());
        assert!(format!("{:#}", err.unwrap_err()).contains("at most 80"));
    }

    #[test]
    fn web_section_and_stored_port_base() {
        let file: FileConfig = toml::from_str(
            r#"
            [web]
            access = "any"
            allowed_networks = ["203.0.113.0/24"]
            allowed_hosts = ["console.example"]
            lockout_secs = 60
            "#,
        )
        .unwrap();
        let c = Config::resolve(file, &ConfigArgs::default()).unwrap();
        assert_eq!(c.web.access, WebAccess::Any);
        assert_eq!(c.web.max_login_failures, 5);
        assert_eq!(c.web.lockout_secs, 60);
        assert!(!c.port_base_explicit);
        let moved = c.clone().with_stored_port_base(Some(40000)).unwrap();
        assert_eq!((moved.port_base, moved.ports.web), (40000, 40001));
        assert_eq!(c.clone().with_stored_port_base(None).unwrap(), c);
        assert!(c.with_stored_port_base(Some(3)).is_err());

        let args = ConfigArgs {
            port_base: Some(41000),
            ..Default::default()
        };
        let pinned = Config::resolve(FileConfig::default(), &args).unwrap();
        assert_eq!(
            pinned.with_stored_port_base(Some(40000)).unwrap().port_base,
            41000
        );
        let err = toml::from_str::<FileConfig>("[web]\nallowed_networks = [\"lan\"]").unwrap_err();
        assert!(err.to_string().contains("allowed_networks"), "{err}");
        assert!(err.to_string().contains("192.0.2.0/24"), "{err}");
        assert!(toml::from_str::<FileConfig>("[web]\naccess = \"wan\"").is_err());
    }

    fn layers(dir: &Path) -> ConfigLayers {
        ConfigLayers {
            vendor: dir.join("usr/share/punktfunk/host.toml"),
            admin: dir.join("etc/punktfunk/host.toml"),
            dropins: dir.join("etc/punktfunk/host.toml.d"),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn no_files_at_all_gives_the_built_in_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let l = layers(dir.path());
        assert_eq!(l.load().unwrap(), FileConfig::default());
        let c = Config::resolve(l.load().unwrap(), &ConfigArgs::default()).unwrap();
        assert_eq!(c.port_base, DEFAULT_PORT_BASE);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    }

    #[test]
    fn etc_overrides_usr_share_and_drop_ins_override_etc_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let l = layers(dir.path());
        write(
            &l.vendor,
            "port_base = 47989\nhostname = \"vendor\"\n[pairing]\npin_timeout_secs = 80\nexchange_timeout_secs = 30\n[[apps]]\ntitle = \"Steam\"\n",
        );
        write(
            &l.admin,
            "hostname = \"living-room\"\n[pairing]\npin_timeout_secs = 60\n",
        );
        write(&l.dropins.join("20-late.toml"), "port_base = 42000\n");
        write(
            &l.dropins.join("10-early.toml"),
            "port_base = 41000\nbind = \"127.0.0.1\"\n",
        );
        // Not a drop-in: wrong extension.
        write(
            &l.dropins.join("30-ignored.toml.rpmsave"),
            "port_base = 1\n",
        );
        assert_eq!(
            l.files().unwrap(),
            vec![
                l.vendor.clone(),
                l.admin.clone(),
                l.dropins.join("10-early.toml"),
                l.dropins.join("20-late.toml")
            ]
        );
        let c = Config::resolve(l.load().unwrap(), &ConfigArgs::default()).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("living-room"));
        assert_eq!(c.port_base, 42000);
        assert_eq!(c.bind, IpAddr::from([127, 0, 0, 1]));
        // The admin's [pairing] changes one key and keeps the vendor's other one.
        assert_eq!(c.pairing.pin_timeout_secs, 60);
        assert_eq!(c.pairing.exchange_timeout_secs, 30);
        assert_eq!(c.apps.len(), 1);
        // Arrays are replaced, not appended: the admin can remove a vendor app.
        write(
            &l.dropins.join("40-apps.toml"),
            "[[apps]]\ntitle = \"Desktop 2\"\n",
        );
        let c = Config::resolve(l.load().unwrap(), &ConfigArgs::default()).unwrap();
        assert_eq!(
            c.apps.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
            ["Desktop 2"]
        );
    }

    #[test]
    fn a_bad_layer_is_an_error_that_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let l = layers(dir.path());
        write(&l.vendor, "port_base = 47989\n");
        write(&l.dropins.join("50-typo.toml"), "prot_base = 1\n");
        let err = format!("{:#}", l.load().unwrap_err());
        assert!(err.contains("50-typo.toml"), "{err}");
        assert!(err.contains("prot_base"), "{err}");
        write(&l.dropins.join("50-typo.toml"), "port_base = \"nope\n");
        let err = format!("{:#}", l.load().unwrap_err());
        assert!(err.contains("50-typo.toml"), "{err}");
    }
}
