//! QUIC plumbing of punktfunk/1 shared by host and client: endpoint configs, the
//! client's certificate, pinning, and a framed control stream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use punktfunk_core::crypto::rsa::sha256;
use punktfunk_core::native::control::{Message, MessageDecoder};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::ClientConfig;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::identity::HostIdentity;

/// The ALPN of the native protocol.
pub const ALPN: &[u8] = b"punktfunk/1";
/// The default UDP port of the native control plane.
pub const DEFAULT_PORT: u16 = 9777;
/// A connection with no traffic for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        IDLE_TIMEOUT.try_into().expect("15 s fits a QUIC varint"),
    ));
    t.keep_alive_interval(Some(Duration::from_secs(3)));
    // One control stream per connection; a flood of streams is refused by QUIC itself.
    t.max_concurrent_bidi_streams(2u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t
}

/// The host's QUIC server config.
pub fn server_config(identity: &HostIdentity) -> Result<quinn::ServerConfig> {
    let tls = crate::tls::native_config(identity, ALPN)?;
    let crypto = QuicServerConfig::try_from(tls).context("TLS config unusable for QUIC")?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// A client's own certificate and key (self-signed; the host pins its fingerprint).
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Certificate DER.
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key DER.
    pub key_der: Vec<u8>,
}

impl ClientCert {
    /// Creates a new ECDSA P-256 certificate for a device called `name`.
    pub fn generate(name: &str) -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the client key")?;
        let params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .context("client certificate parameters")?;
        let cert = params
            .self_signed(&key)
            .context("self-signing the client certificate")?;
        Ok(Self {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// SHA-256 of the certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&[&self.cert_der])
    }
}

/// Accepts the host certificate whose fingerprint is pinned, or (when nothing is
/// pinned yet, i.e. for pairing) any certificate: pairing binds the fingerprint it saw
/// into SPAKE2, so an interceptor's certificate fails there.
#[derive(Debug)]
struct PinnedHost {
    pinned: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedHost {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pinned {
            Some(fp) if sha256(&[end_entity.as_ref()]) != fp => Err(rustls::Error::General(
                "the host's certificate is not the one paired with".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    crate::tls::handshake_signature_checks!();
}

/// The client's QUIC config: its certificate, and the host pin if paired.
pub fn client_config(
    cert: &ClientCert,
    pinned_host: Option<[u8; 32]>,
) -> Result<quinn::ClientConfig> {
    let provider = crate::tls::provider();
    let verifier = Arc::new(PinnedHost {
        pinned: pinned_host,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )
        .context("loading the client certificate")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).context("TLS config unusable for QUIC")?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// SHA-256 of the certificate the peer presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Result<[u8; 32]> {
    Ok(sha256(&[&peer_certificate(conn)?]))
}

/// The DER certificate the peer presented.
pub fn peer_certificate(conn: &quinn::Connection) -> Result<Vec<u8>> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| anyhow!("the peer presented no certificate"))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| anyhow!("unexpected peer identity type"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("the peer presented an empty certificate chain"))?;
    Ok(leaf.to_vec())
}

/// The control stream: framed messages both ways, each read bounded by a timeout.
#[derive(Debug)]
pub struct ControlStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: MessageDecoder,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl ControlStream {
    /// Wraps an opened bidirectional stream.
    pub fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self {
            send,
            recv,
            decoder: MessageDecoder::new(),
            buf: vec![0; 4096],
            out: Vec::new(),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.out.clear();
        msg.encode(&mut self.out)?;
        self.send
            .write_all(&self.out)
            .await
            .context("writing to the control stream")
    }

    /// The next message; `Ok(None)` when the peer finished the stream.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            match self.recv.read(&mut self.buf).await? {
                Some(n) => self.decoder.push(&self.buf[..n]),
                None if self.decoder.buffered() == 0 => return Ok(None),
                None => bail!("the control stream ended inside a message"),
            }
        }
    }

    /// The next message within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Result<Message> {
        match tokio::time::timeout(limit, self.recv()).await {
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => bail!("the peer closed the control stream"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no control message within {} s", limit.as_secs()),
        }
    }

    /// Finishes the sending side.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}
