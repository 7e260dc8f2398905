//! punktfunk/1 pairing: SPAKE2 over the PIN the host shows, bound to both TLS
//! certificates.
//!
//! The client connects over QUIC without knowing the host's certificate, and the host
//! does not know the client's. Both run SPAKE2 (Ed25519 group) with the PIN as the
//! password and the SHA-256 fingerprints of the client and host certificates, as each
//! side saw them in the TLS handshake, as the SPAKE2 identities. A man in the middle
//! terminates TLS with its own certificates, so the two sides would use different
//! identities and derive different keys. Each side then proves its key with an HMAC
//! (host first, so a client typing the wrong PIN finds out at once); only after the
//! client's proof checks out does the host store the client's fingerprint, and the
//! client the host's. A wrong guess costs the attacker one online attempt, which the
//! host counts.
//!
//! States consume themselves; nothing here touches a socket or a clock.

use aws_lc_rs::{constant_time, hmac};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use thiserror::Error;

/// Digits of a native PIN.
pub const PIN_DIGITS: usize = 6;

const HOST_LABEL: &[u8] = b"punktfunk/1 pairing: host confirms";
const CLIENT_LABEL: &[u8] = b"punktfunk/1 pairing: client confirms";

/// Why a pairing exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PairError {
    /// The peer's SPAKE2 message is malformed.
    #[error("malformed SPAKE2 message")]
    BadMessage,
    /// The PIN is not six digits.
    #[error("the PIN must be {PIN_DIGITS} digits")]
    BadPin,
    /// The proofs do not match: a wrong PIN, or someone in the middle.
    #[error("the PIN does not match (or the connection was intercepted)")]
    Mismatch,
}

/// The certificates the exchange is bound to, as SHA-256 of their DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The client certificate's fingerprint.
    pub client_fp: [u8; 32],
    /// The host certificate's fingerprint.
    pub host_fp: [u8; 32],
}

fn check_pin(pin: &str) -> Result<(), PairError> {
    if pin.len() == PIN_DIGITS && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PairError::BadPin)
    }
}

fn confirm(key: &[u8], label: &[u8], b: &Binding) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(label);
    ctx.update(&b.client_fp);
    ctx.update(&b.host_fp);
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The client after sending its SPAKE2 message, waiting for the host's reply.
#[derive(Debug)]
pub struct ClientAwaitingReply {
    spake: Spake2<Ed25519Group>,
    binding: Binding,
}

impl ClientAwaitingReply {
    /// Starts pairing with the PIN the user typed; returns the state and the message
    /// to send (`PairStart`).
    pub fn start(pin: &str, binding: Binding) -> Result<(Self, Vec<u8>), PairError> {
        check_pin(pin)?;
        let (spake, msg) = Spake2::<Ed25519Group>::start_a(
            &Password::new(pin.as_bytes()),
            &Identity::new(&binding.client_fp),
            &Identity::new(&binding.host_fp),
        );
        Ok((Self { spake, binding }, msg))
    }

    /// Takes the host's reply; on success returns the client's proof to send
    /// (`PairConfirm`). A mismatch means a wrong PIN or an interceptor.
    pub fn finish(self, host_msg: &[u8], host_confirm: &[u8; 32]) -> Result<[u8; 32], PairError> {
        let key = self
            .spake
            .finish(host_msg)
            .map_err(|_| PairError::BadMessage)?;
        if !same(&confirm(&key, HOST_LABEL, &self.binding), host_confirm) {
            return Err(PairError::Mismatch);
        }
        Ok(confirm(&key, CLIENT_LABEL, &self.binding))
    }
}

/// The host after replying, waiting for the client's proof.
#[derive(Debug)]
pub struct HostAwaitingConfirm {
    expected: [u8; 32],
}

/// What the host sends back (`PairReply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReply {
    /// SPAKE2 message B.
    pub spake: Vec<u8>,
    /// The host's proof.
    pub confirm: [u8; 32],
}

impl HostAwaitingConfirm {
    /// Answers a client's SPAKE2 message with the armed `pin`.
    pub fn respond(
        pin: &str,
        binding: Binding,
        client_msg: &[u8],
    ) -> Result<(Self, HostReply), PairError> {
        check_pin(pin)?;
        let (spake, msg) = Spake2::<Ed25519Group>::start_b(
            &Password::new(pin.as_bytes()),
            &Identity::new(&binding.client_fp),
            &Identity::new(&binding.host_fp),
        );
        let key = spake
            .finish(client_msg)
            .map_err(|_| PairError::BadMessage)?;
        Ok((
            Self {
                expected: confirm(&key, CLIENT_LABEL, &binding),
            },
            HostReply {
                spake: msg,
                confirm: confirm(&key, HOST_LABEL, &binding),
            },
        ))
    }

    /// Checks the client's proof (constant time).
    pub fn verify(self, client_confirm: &[u8; 32]) -> Result<(), PairError> {
        if same(&self.expected, client_confirm) {
            Ok(())
        } else {
            Err(PairError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Binding = Binding {
        client_fp: [1; 32],
        host_fp: [2; 32],
    };

    fn run(
        client_pin: &str,
        host_pin: &str,
        client_b: Binding,
        host_b: Binding,
    ) -> Result<(), PairError> {
        let (client, a) = ClientAwaitingReply::start(client_pin, client_b)?;
        let (host, reply) = HostAwaitingConfirm::respond(host_pin, host_b, &a)?;
        let proof = client.finish(&reply.spake, &reply.confirm)?;
        host.verify(&proof)
    }

    #[test]
    fn same_pin_and_certificates_pair() {
        assert_eq!(run("123456", "123456", B, B), Ok(()));
    }

    #[test]
    fn wrong_pin_fails_on_both_sides() {
        assert_eq!(run("123457", "123456", B, B), Err(PairError::Mismatch));
        // A client that skips its own check still cannot fool the host.
        let (_, a) = ClientAwaitingReply::start("000000", B).unwrap();
        let (host, _) = HostAwaitingConfirm::respond("123456", B, &a).unwrap();
        assert_eq!(host.verify(&[0; 32]), Err(PairError::Mismatch));
    }

    #[test]
    fn an_interceptor_with_other_certificates_fails_even_with_the_pin() {
        let mitm = Binding {
            client_fp: [1; 32],
            host_fp: [9; 32],
        };
        assert_eq!(run("123456", "123456", mitm, B), Err(PairError::Mismatch));
    }

    #[test]
    fn pins_must_be_six_digits() {
        assert_eq!(
            ClientAwaitingReply::start("12345", B).map(|_| ()),
            Err(PairError::BadPin)
        );
        assert_eq!(
            HostAwaitingConfirm::respond("12a456", B, &[0; 33]).map(|_| ()),
            Err(PairError::BadPin)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn arbitrary_spake_messages_are_refused_without_panic(msg in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = HostAwaitingConfirm::respond("123456", B, &msg);
            let (client, _) = ClientAwaitingReply::start("123456", B).unwrap();
            prop_assert!(client.finish(&msg, &[0; 32]).is_err());
        }
    }
}
