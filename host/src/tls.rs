//! TLS for the host's servers, on rustls with the aws-lc-rs provider.
//!
//! nvhttp's HTTPS port asks every client for a certificate and accepts any
//! certificate whose holder proves it has the key (the handshake signature is still
//! verified). Whether that certificate is *paired* is decided afterwards, per request,
//! against the store: Moonlight expects an unpaired client to get an HTTP answer with
//! `status_code="401"`, not a failed handshake, and moonlight-qt only falls back to
//! pairing on that answer (Sunshine does the same, `nvhttp.cpp` `after_bind`).

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig};

use crate::identity::HostIdentity;

/// The crypto provider every TLS config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The handshake-signature half of a rustls verifier, the same for every verifier
/// here (nvhttp's any-client-certificate one, the native host pin): the peer must
/// prove it holds its certificate's key, checked with rustls' WebPKI code over
/// `self.algorithms`. Only which certificates are acceptable differs between them.
macro_rules! handshake_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signature_checks;

/// Requires a client certificate, takes any, and checks the handshake signature.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Self-signed, any dates (Moonlight stamps notBefore with the client's own
        // clock): membership in the paired store is checked per request.
        Ok(ClientCertVerified::assertion())
    }

    handshake_signature_checks!();
}

fn cert_and_key(
    identity: &HostIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert = CertificateDer::from(identity.cert.der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.clone()));
    Ok((vec![cert], key))
}

/// The HTTPS config of nvhttp: host certificate, mandatory client certificate.
pub fn nvhttp_config(identity: &HostIdentity) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = cert_and_key(identity)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading the host certificate into TLS")?;
    Ok(Arc::new(config))
}

/// The HTTPS config of the web console: host certificate, no client certificate.
pub fn web_config(identity: &HostIdentity) -> Result<Arc<ServerConfig>> {
    let (chain, key) = cert_and_key(identity)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("loading the host certificate into TLS")?;
    Ok(Arc::new(config))
}

/// The QUIC config of the native protocol (punktfunk/1): TLS 1.3 only, the host
/// certificate, a mandatory client certificate of any issuer (pinned against the store
/// after the handshake, like nvhttp's), and the protocol's ALPN.
pub fn native_config(identity: &HostIdentity, alpn: &[u8]) -> Result<ServerConfig> {
    let provider = provider();
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = cert_and_key(identity)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading the host certificate into TLS")?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}
