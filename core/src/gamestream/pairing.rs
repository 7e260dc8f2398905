//! GameStream PIN pairing, both sides, as typed states that consume themselves.
//!
//! The five phases, as moonlight-common-c's clients and Sunshine (`nvhttp.cpp`,
//! `crypto.cpp`) run them. `K` is the AES-128-ECB key, `H` SHA-256, `sig(cert)` the raw
//! signature bytes of a certificate:
//!
//! 1. `getservercert`: the client sends a 16-byte salt and its certificate; the host
//!    waits for the user to type the PIN the client shows, derives
//!    `K = H(salt || PIN)[..16]` and returns its certificate.
//! 2. `clientchallenge`: `E(challenge)`; the host answers
//!    `E(H(challenge || sig(host cert) || server_secret) || server_challenge)`.
//! 3. `serverchallengeresp`: `E(H(server_challenge || sig(client cert) || client_secret))`;
//!    the host answers `server_secret || sign_host(server_secret)`. The client now
//!    checks the host's hash: a mismatch means a wrong PIN, and it stops here.
//! 4. `clientpairingsecret`: `client_secret || sign_client(client_secret)`; the host
//!    checks the client's hash and signature. Only now is the client trusted.
//! 5. `pairchallenge`, over mutual TLS: confirms the certificate works.
//!
//! Nothing here touches the network or a clock; randomness is passed in.

use thiserror::Error;

use super::nvhttp::hex;
use crate::crypto::block::AesEcb;
use crate::crypto::rsa::{CertError, CertInfo, RsaSigner, sha256};

/// Why a pairing step failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairingError {
    /// A phase parameter was missing, not hex, or of the wrong length.
    #[error("invalid pairing parameter: {0}")]
    BadParameter(&'static str),
    /// The certificate was unusable.
    #[error("invalid certificate: {0}")]
    Certificate(#[from] CertError),
    /// The PIN is not 4 to 8 ASCII digits.
    #[error("the PIN must be 4 to 8 digits")]
    BadPin,
    /// The peer's proof did not match: the PIN typed on the host differs from the one
    /// the client showed, or someone is in the middle.
    #[error("the PIN did not match (or the pairing was tampered with)")]
    Mismatch,
    /// The host's signature over its secret did not verify (client side).
    #[error("the host's signature did not verify")]
    BadServerSignature,
    /// AES failed (a length that is not whole blocks).
    #[error("pairing cipher failure")]
    Cipher,
}

/// The host's certificate and key.
#[derive(Debug)]
pub struct ServerIdentity {
    /// The host certificate (sent as `plaincert`, also the TLS certificate).
    pub cert: CertInfo,
    /// The host key.
    pub signer: RsaSigner,
}

/// Checks a PIN: 4 to 8 ASCII digits (Moonlight shows 4).
pub fn validate_pin(pin: &str) -> Result<(), PairingError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PairingError::BadPin)
    }
}

/// `K = SHA-256(salt || PIN)[..16]`.
pub fn pairing_key(salt: &[u8; 16], pin: &str) -> [u8; 16] {
    let h = sha256(&[salt, pin.as_bytes()]);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

fn cipher(key: &[u8; 16]) -> AesEcb {
    AesEcb::new(key).expect("16-byte key")
}

fn decrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, PairingError> {
    let mut buf = data.to_vec();
    cipher(key)
        .decrypt(&mut buf)
        .map_err(|_| PairingError::Cipher)?;
    Ok(buf)
}

fn encrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, PairingError> {
    let mut buf = data.to_vec();
    cipher(key)
        .encrypt(&mut buf)
        .map_err(|_| PairingError::Cipher)?;
    Ok(buf)
}

fn exact<const N: usize>(hex_text: &str, what: &'static str) -> Result<[u8; N], PairingError> {
    let bytes = hex::decode(hex_text).ok_or(PairingError::BadParameter(what))?;
    bytes
        .try_into()
        .map_err(|_| PairingError::BadParameter(what))
}

/// Constant-time equality, so a mismatch reveals nothing about where it differs.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------
// Host side

/// Phase 1 received; waiting for the user to type the PIN on the host.
#[derive(Debug, Clone)]
pub struct AwaitingPin {
    salt: [u8; 16],
    client: CertInfo,
}

impl AwaitingPin {
    /// Parses phase 1: `salt` (32 hex digits) and `clientcert` (hex of a PEM).
    pub fn new(salt_hex: &str, client_cert_hex: &str) -> Result<Self, PairingError> {
        let salt = exact::<16>(salt_hex, "salt must be 32 hex digits")?;
        let pem = hex::decode(client_cert_hex)
            .ok_or(PairingError::BadParameter("clientcert must be hex"))?;
        Ok(Self {
            salt,
            client: CertInfo::from_pem(&pem)?,
        })
    }

    /// The client's certificate.
    pub fn client(&self) -> &CertInfo {
        &self.client
    }

    /// The user typed `pin`. Returns the next state and the phase-1 reply's
    /// `plaincert` (hex of the host certificate PEM).
    pub fn enter_pin(
        self,
        pin: &str,
        server: &ServerIdentity,
    ) -> Result<(AwaitingClientChallenge, String), PairingError> {
        validate_pin(pin)?;
        let next = AwaitingClientChallenge {
            key: pairing_key(&self.salt, pin),
            client: self.client,
        };
        Ok((next, hex::encode_upper(&server.cert.pem)))
    }
}

/// Phase 1 answered; waiting for `clientchallenge`.
#[derive(Debug, Clone)]
pub struct AwaitingClientChallenge {
    key: [u8; 16],
    client: CertInfo,
}

impl AwaitingClientChallenge {
    /// Phase 2. `random` supplies the server secret (first 16 bytes) and the server
    /// challenge (last 16). Returns the next state and `challengeresponse` (hex).
    pub fn client_challenge(
        self,
        challenge_hex: &str,
        server: &ServerIdentity,
        random: [u8; 32],
    ) -> Result<(AwaitingServerChallengeResp, String), PairingError> {
        let enc = exact::<16>(challenge_hex, "clientchallenge must be 32 hex digits")?;
        let challenge = decrypt(&self.key, &enc)?;
        let mut server_secret = [0u8; 16];
        let mut server_challenge = [0u8; 16];
        server_secret.copy_from_slice(&random[..16]);
        server_challenge.copy_from_slice(&random[16..]);
        let h = sha256(&[&challenge, &server.cert.signature, &server_secret]);
        let mut plain = Vec::with_capacity(48);
        plain.extend_from_slice(&h);
        plain.extend_from_slice(&server_challenge);
        let reply = encrypt(&self.key, &plain)?;
        Ok((
            AwaitingServerChallengeResp {
                key: self.key,
                client: self.client,
                server_secret,
                server_challenge,
            },
            hex::encode_upper(&reply),
        ))
    }
}

/// Phase 2 answered; waiting for `serverchallengeresp`.
#[derive(Debug, Clone)]
pub struct AwaitingServerChallengeResp {
    key: [u8; 16],
    client: CertInfo,
    server_secret: [u8; 16],
    server_challenge: [u8; 16],
}

impl AwaitingServerChallengeResp {
    /// Phase 3. Returns the next state and `pairingsecret` (hex of the server secret and
    /// the host's signature over it).
    pub fn server_challenge_resp(
        self,
        resp_hex: &str,
        server: &ServerIdentity,
    ) -> Result<(AwaitingClientPairingSecret, String), PairingError> {
        let enc = exact::<32>(resp_hex, "serverchallengeresp must be 64 hex digits")?;
        let client_hash = decrypt(&self.key, &enc)?;
        let signature = server.signer.sign(&self.server_secret)?;
        let mut secret = Vec::with_capacity(16 + signature.len());
        secret.extend_from_slice(&self.server_secret);
        secret.extend_from_slice(&signature);
        Ok((
            AwaitingClientPairingSecret {
                client: self.client,
                server_challenge: self.server_challenge,
                client_hash: client_hash.try_into().expect("32 bytes in, 32 out"),
            },
            hex::encode_upper(&secret),
        ))
    }
}

/// Phase 3 answered; waiting for `clientpairingsecret`.
#[derive(Debug, Clone)]
pub struct AwaitingClientPairingSecret {
    client: CertInfo,
    server_challenge: [u8; 16],
    client_hash: [u8; 32],
}

impl AwaitingClientPairingSecret {
    /// Phase 4: checks the client's hash and signature. On success the client's
    /// certificate may be trusted; on [`PairingError::Mismatch`] the PIN was wrong.
    pub fn client_pairing_secret(self, secret_hex: &str) -> Result<CertInfo, PairingError> {
        let data = hex::decode(secret_hex).ok_or(PairingError::BadParameter(
            "clientpairingsecret must be hex",
        ))?;
        if data.len() <= 16 || data.len() > 16 + 1024 {
            return Err(PairingError::BadParameter(
                "clientpairingsecret has the wrong length",
            ));
        }
        let (secret, sig) = data.split_at(16);
        let expected = sha256(&[&self.server_challenge, &self.client.signature, secret]);
        let hash_ok = ct_eq(&expected, &self.client_hash);
        let sig_ok = self.client.verify(secret, sig);
        if hash_ok && sig_ok {
            Ok(self.client)
        } else {
            Err(PairingError::Mismatch)
        }
    }
}

// ---------------------------------------------------------------------------------
// Client side (tests and the reference client)

/// The client side of pairing, mirroring what Moonlight does.
#[derive(Debug)]
pub struct ClientPairing {
    key: [u8; 16],
    salt: [u8; 16],
    cert: CertInfo,
    signer: RsaSigner,
    challenge: [u8; 16],
    client_secret: [u8; 16],
    server: Option<CertInfo>,
    server_response: [u8; 32],
    server_challenge: [u8; 16],
}

impl ClientPairing {
    /// Starts pairing with `pin`. `random` supplies salt, challenge and client secret.
    pub fn new(pin: &str, cert: CertInfo, signer: RsaSigner, random: [u8; 48]) -> Self {
        let mut salt = [0u8; 16];
        let mut challenge = [0u8; 16];
        let mut client_secret = [0u8; 16];
        salt.copy_from_slice(&random[..16]);
        challenge.copy_from_slice(&random[16..32]);
        client_secret.copy_from_slice(&random[32..]);
        Self {
            key: pairing_key(&salt, pin),
            salt,
            cert,
            signer,
            challenge,
            client_secret,
            server: None,
            server_response: [0; 32],
            server_challenge: [0; 16],
        }
    }

    /// Query arguments of phase 1.
    pub fn phase1_args(&self) -> String {
        format!(
            "phrase=getservercert&salt={}&clientcert={}",
            hex::encode_lower(&self.salt),
            hex::encode_lower(&self.cert.pem)
        )
    }

    /// Takes the phase-1 `plaincert`; returns the arguments of phase 2.
    pub fn on_server_cert(&mut self, plaincert_hex: &str) -> Result<String, PairingError> {
        let pem = hex::decode(plaincert_hex).ok_or(PairingError::BadParameter("plaincert"))?;
        self.server = Some(CertInfo::from_pem(&pem)?);
        let enc = encrypt(&self.key, &self.challenge)?;
        Ok(format!("clientchallenge={}", hex::encode_lower(&enc)))
    }

    /// Takes the phase-2 `challengeresponse`; returns the arguments of phase 3.
    pub fn on_challenge_response(&mut self, resp_hex: &str) -> Result<String, PairingError> {
        let enc = exact::<48>(resp_hex, "challengeresponse must be 96 hex digits")?;
        let plain = decrypt(&self.key, &enc)?;
        self.server_response.copy_from_slice(&plain[..32]);
        self.server_challenge.copy_from_slice(&plain[32..]);
        let h = sha256(&[
            &self.server_challenge,
            &self.cert.signature,
            &self.client_secret,
        ]);
        let enc = encrypt(&self.key, &h)?;
        Ok(format!("serverchallengeresp={}", hex::encode_lower(&enc)))
    }

    /// Takes the phase-3 `pairingsecret`, checks the host's signature and hash (the PIN
    /// check), and returns the arguments of phase 4.
    pub fn on_pairing_secret(&mut self, secret_hex: &str) -> Result<String, PairingError> {
        let server = self
            .server
            .as_ref()
            .ok_or(PairingError::BadParameter("phase 3 before phase 1"))?;
        let data = hex::decode(secret_hex).ok_or(PairingError::BadParameter("pairingsecret"))?;
        if data.len() <= 16 {
            return Err(PairingError::BadParameter("pairingsecret too short"));
        }
        let (secret, sig) = data.split_at(16);
        if !server.verify(secret, sig) {
            return Err(PairingError::BadServerSignature);
        }
        let expected = sha256(&[&self.challenge, &server.signature, secret]);
        if !ct_eq(&expected, &self.server_response) {
            return Err(PairingError::Mismatch);
        }
        let sig = self.signer.sign(&self.client_secret)?;
        let mut out = self.client_secret.to_vec();
        out.extend_from_slice(&sig);
        Ok(format!("clientpairingsecret={}", hex::encode_lower(&out)))
    }
}

#[cfg(test)]
mod tests;
