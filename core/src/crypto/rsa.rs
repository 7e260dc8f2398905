//! RSA-2048 with PKCS#1 v1.5 and SHA-256, and the parts of an X.509 certificate that
//! GameStream pairing uses: the raw signature bytes and the RSA public key.
//!
//! Pairing signs and checks secrets with the host's and the client's certificate keys
//! (Sunshine `crypto.cpp` `sign256` / `verify256`), and hashes each certificate's own
//! signature bytes into the challenge responses (`X509_get0_signature`).

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use thiserror::Error;

/// Why a certificate or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertError {
    /// Not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    /// The certificate did not parse as X.509.
    #[error("invalid X.509 certificate: {0}")]
    X509(String),
    /// The certificate's key is not RSA.
    #[error("the certificate's key is not RSA")]
    NotRsa,
    /// A private key that aws-lc-rs would not load.
    #[error("invalid RSA private key")]
    Key,
    /// Signing failed.
    #[error("RSA signing failed")]
    Sign,
}

/// The RSA-SHA256 public-key algorithm OID (rsaEncryption).
const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// A parsed certificate: what pairing needs from it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The PEM text exactly as received.
    pub pem: Vec<u8>,
    /// The DER encoding.
    pub der: Vec<u8>,
    /// The raw bytes of the certificate's signature (the `signatureValue` BIT STRING).
    pub signature: Vec<u8>,
    /// The RSA public key as PKCS#1 `RSAPublicKey` DER.
    pub rsa_public_key: Vec<u8>,
}

impl CertInfo {
    /// Parses a PEM certificate with an RSA key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let (_, parsed) =
            x509_parser::pem::parse_x509_pem(pem).map_err(|e| CertError::Pem(e.to_string()))?;
        if parsed.label != "CERTIFICATE" {
            return Err(CertError::Pem(format!(
                "unexpected PEM label {}",
                parsed.label
            )));
        }
        let cert = parsed
            .parse_x509()
            .map_err(|e| CertError::X509(e.to_string()))?;
        let spki = &cert.tbs_certificate.subject_pki;
        if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION_OID {
            return Err(CertError::NotRsa);
        }
        Ok(Self {
            pem: pem.to_vec(),
            der: parsed.contents.clone(),
            signature: cert.signature_value.data.to_vec(),
            rsa_public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Lowercase hex SHA-256 of the DER encoding: how the store identifies a client.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.der)
    }

    /// Checks an RSA PKCS#1 v1.5 SHA-256 signature over `message` with this
    /// certificate's key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.rsa_public_key)
            .verify(message, sig)
            .is_ok()
    }
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An RSA private key that signs with PKCS#1 v1.5 and SHA-256.
pub struct RsaSigner {
    key: RsaKeyPair,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaSigner(..)")
    }
}

impl RsaSigner {
    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CertError> {
        Ok(Self {
            key: RsaKeyPair::from_pkcs8(der).map_err(|_| CertError::Key)?,
        })
    }

    /// Signs `message`. PKCS#1 v1.5 is deterministic; the RNG is only what the API
    /// asks for.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CertError> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| CertError::Sign)?;
        Ok(sig)
    }

    /// The public key, PKCS#1 `RSAPublicKey` DER.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }
}

/// Generates an RSA-2048 key and a self-signed certificate for it with common name
/// `cn`: the host's identity, and test clients'. Returns the certificate PEM and the
/// key as PKCS#8 DER.
pub fn generate_identity(cn: &str) -> Result<(String, Vec<u8>), CertError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| CertError::Key)?;
    let pkcs8 = key.as_der().map_err(|_| CertError::Key)?.as_ref().to_vec();
    let key_der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| CertError::Key)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::X509(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    // Twenty years, like Moonlight's own client certificates: the host's identity is
    // pinned by clients and must not expire under them.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| CertError::X509(e.to_string()))?;
    Ok((cert.pem(), pkcs8))
}
