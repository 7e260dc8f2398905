//! The punktfunk/1 control plane, client side: connect, pair, negotiate a mode. The
//! reference client (`punktfunk-probe`) and the loopback tests use it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use punktfunk_core::native::control::{Capabilities, Message, Mode, PairFailure};
use punktfunk_core::native::pairing::{Binding, ClientAwaitingReply, PairError};

use super::quic::{ClientCert, ControlStream, client_config, peer_fingerprint};

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the host said in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Host name.
    pub name: String,
    /// Whether this client is paired.
    pub paired: bool,
    /// Whether the host trusts on first use.
    pub tofu: bool,
    /// What it can encode.
    pub caps: Capabilities,
}

/// How a pairing attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOutcome {
    /// Paired: pin [`NativeClient::host_fingerprint`] from now on.
    Paired,
    /// The host refused.
    Refused(PairFailure),
}

/// The mode the host granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The mode.
    pub mode: Mode,
    /// Data plane port.
    pub data_port: u16,
    /// Largest frame.
    pub max_frame_bytes: u32,
    /// Renegotiation count.
    pub epoch: u32,
}

/// A connection to a host.
#[derive(Debug)]
pub struct NativeClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    ctl: ControlStream,
    host: HostInfo,
    host_fp: [u8; 32],
    cert_fp: [u8; 32],
}

impl NativeClient {
    /// Connects and exchanges hellos. With `pinned_host`, a host presenting any other
    /// certificate is refused during the TLS handshake.
    pub async fn connect(
        addr: SocketAddr,
        cert: &ClientCert,
        pinned_host: Option<[u8; 32]>,
        name: &str,
        caps: Capabilities,
    ) -> Result<Self> {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let mut endpoint = quinn::Endpoint::client(local).context("binding the client socket")?;
        endpoint.set_default_client_config(client_config(cert, pinned_host)?);
        let conn = tokio::time::timeout(STEP_TIMEOUT, endpoint.connect(addr, "punktfunk")?)
            .await
            .context("connecting timed out")?
            .with_context(|| format!("connecting to {addr}"))?;
        let host_fp = peer_fingerprint(&conn)?;
        let (send, recv) = conn.open_bi().await?;
        let mut ctl = ControlStream::new(send, recv);
        ctl.send(&Message::Hello {
            name: name.to_owned(),
            caps,
        })
        .await?;
        let host = match ctl.recv_within(STEP_TIMEOUT).await? {
            Message::HostHello {
                name,
                paired,
                tofu,
                caps,
            } => HostInfo {
                name,
                paired,
                tofu,
                caps,
            },
            Message::Goodbye { reason } => bail!("the host refused: {reason}"),
            other => bail!("expected the host's hello, got {other:?}"),
        };
        Ok(Self {
            endpoint,
            conn,
            ctl,
            host,
            host_fp,
            cert_fp: cert.fingerprint(),
        })
    }

    /// The host's hello.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// SHA-256 of the certificate the host presented.
    pub fn host_fingerprint(&self) -> [u8; 32] {
        self.host_fp
    }

    /// The QUIC connection (for the TLS exporter and datagrams).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Pairs with the PIN the host shows.
    pub async fn pair(&mut self, pin: &str) -> Result<PairOutcome> {
        if self.host.paired {
            // This certificate is already paired; the host expects no exchange.
            return Ok(PairOutcome::Paired);
        }
        let binding = Binding {
            client_fp: self.cert_fp,
            host_fp: self.host_fp,
        };
        let (state, msg) = ClientAwaitingReply::start(pin, binding)?;
        self.ctl.send(&Message::PairStart { spake: msg }).await?;
        let (spake, confirm) = match self.ctl.recv_within(STEP_TIMEOUT).await? {
            Message::PairReply { spake, confirm } => (spake, confirm),
            Message::PairFailed { reason } => return Ok(PairOutcome::Refused(reason)),
            other => bail!("expected the host's pairing reply, got {other:?}"),
        };
        let proof = match state.finish(&spake, &confirm) {
            Ok(p) => p,
            // Tell the host (it counts the failure) with a proof that cannot match.
            Err(PairError::Mismatch) => [0; 32],
            Err(e) => return Err(e.into()),
        };
        self.ctl
            .send(&Message::PairConfirm { confirm: proof })
            .await?;
        match self.ctl.recv_within(STEP_TIMEOUT).await? {
            Message::PairOk => {
                self.host.paired = true;
                Ok(PairOutcome::Paired)
            }
            Message::PairFailed { reason } => Ok(PairOutcome::Refused(reason)),
            other => bail!("expected the pairing result, got {other:?}"),
        }
    }

    /// Asks for `mode` (first, or to renegotiate mid-stream); returns what the host
    /// granted.
    pub async fn request_mode(&mut self, mode: Mode) -> Result<Granted> {
        self.ctl.send(&Message::ModeRequest(mode)).await?;
        loop {
            match self.ctl.recv_within(STEP_TIMEOUT).await? {
                Message::ModeAck {
                    mode,
                    data_port,
                    max_frame_bytes,
                    epoch,
                } => {
                    return Ok(Granted {
                        mode,
                        data_port,
                        max_frame_bytes,
                        epoch,
                    });
                }
                Message::ModeRefused { reason } => bail!("the host refused the mode: {reason}"),
                Message::Goodbye { reason } => bail!("the host ended the session: {reason}"),
                other => tracing::debug!("ignoring {other:?} while waiting for the mode"),
            }
        }
    }

    /// Sends a message (input, reports, IDR requests).
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.ctl.send(msg).await
    }

    /// The next message from the host, if it says anything within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Result<Message> {
        self.ctl.recv_within(limit).await
    }

    /// Says goodbye and closes.
    pub async fn close(mut self) {
        let _ = self
            .ctl
            .send(&Message::Goodbye {
                reason: "client closing".into(),
            })
            .await;
        self.ctl.finish();
        self.conn.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}
