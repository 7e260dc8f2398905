//! sway's IPC (the i3 protocol): enough to wait for an output's mode and change it.
//!
//! Hand-written rather than the `swayipc` crate because that crate finds sway only
//! through the process-wide `SWAYSOCK` variable, and the host talks to each session's
//! own socket from a multi-threaded process, where changing the environment is unsound.
//! The framing is 14 bytes: `i3-ipc`, payload length and type as native-endian u32.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

const MAGIC: &[u8; 6] = b"i3-ipc";
const RUN_COMMAND: u32 = 0;
const GET_OUTPUTS: u32 = 3;

/// An output's mode as sway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct OutputMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Refresh in millihertz.
    pub refresh: u32,
}

/// One output from `get_outputs`.
#[derive(Debug, Clone, Deserialize)]
pub struct Output {
    /// "HEADLESS-1".
    pub name: String,
    /// Whether it is on.
    #[serde(default)]
    pub active: bool,
    /// Its current mode (absent while disabled).
    pub current_mode: Option<OutputMode>,
}

/// A connection to one sway.
#[derive(Debug)]
pub struct SwayIpc(UnixStream);

impl SwayIpc {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<Self> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        Ok(Self(s))
    }

    fn request(&mut self, kind: u32, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut msg = Vec::with_capacity(14 + payload.len());
        msg.extend_from_slice(MAGIC);
        msg.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(payload);
        self.0.write_all(&msg)?;
        let mut header = [0u8; 14];
        self.0.read_exact(&mut header)?;
        if &header[..6] != MAGIC {
            return Err(std::io::Error::other("sway IPC: bad magic in the reply"));
        }
        let len = u32::from_ne_bytes(header[6..10].try_into().expect("4 bytes")) as usize;
        if len > 16 << 20 {
            return Err(std::io::Error::other("sway IPC: reply too large"));
        }
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body)?;
        Ok(body)
    }

    /// `get_outputs`.
    pub fn outputs(&mut self) -> std::io::Result<Vec<Output>> {
        let body = self.request(GET_OUTPUTS, b"")?;
        serde_json::from_slice(&body).map_err(std::io::Error::other)
    }

    /// Runs sway commands; an error carries sway's message for the first that failed.
    pub fn command(&mut self, cmd: &str) -> std::io::Result<()> {
        #[derive(Deserialize)]
        struct Outcome {
            success: bool,
            #[serde(default)]
            error: Option<String>,
        }
        let body = self.request(RUN_COMMAND, cmd.as_bytes())?;
        let outcomes: Vec<Outcome> =
            serde_json::from_slice(&body).map_err(std::io::Error::other)?;
        match outcomes.into_iter().find(|o| !o.success) {
            Some(o) => Err(std::io::Error::other(format!(
                "sway refused \"{cmd}\": {}",
                o.error.unwrap_or_default()
            ))),
            None => Ok(()),
        }
    }
}

/// Whether `mode` is what the client asked for: same size, refresh within 1 Hz
/// (sway reports the refresh it really runs in mHz, e.g. 59 940 for 59.94).
pub fn matches(mode: &OutputMode, width: u32, height: u32, fps: u32) -> bool {
    mode.width == width && mode.height == height && mode.refresh.abs_diff(fps * 1000) < 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_outputs_and_matches_modes() {
        let json = r#"[{"id":3,"name":"HEADLESS-1","active":true,"current_mode":{"width":1280,"height":720,"refresh":60000},"modes":[]}]"#;
        let outs: Vec<Output> = serde_json::from_str(json).unwrap();
        let m = outs[0].current_mode.unwrap();
        assert!(matches(&m, 1280, 720, 60));
        assert!(!matches(&m, 1920, 1080, 60));
        assert!(!matches(&m, 1280, 720, 120));
        assert!(matches(
            &OutputMode {
                width: 1,
                height: 1,
                refresh: 59_940
            },
            1,
            1,
            60
        ));
    }
}
