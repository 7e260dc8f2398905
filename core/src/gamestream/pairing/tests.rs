use super::*;
use crate::crypto::rsa::generate_identity;

fn identity(cn: &str) -> (CertInfo, RsaSigner) {
    let (pem, key) = generate_identity(cn).unwrap();
    (
        CertInfo::from_pem(pem.as_bytes()).unwrap(),
        RsaSigner::from_pkcs8(&key).unwrap(),
    )
}

fn arg<'a>(args: &'a str, name: &str) -> &'a str {
    args.split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap()
}

/// Runs all phases between a host state machine and a client state machine.
fn pair(host_pin: &str, client_pin: &str) -> Result<CertInfo, PairingError> {
    let (server_cert, server_key) = identity("punktfunk host");
    let server = ServerIdentity {
        cert: server_cert,
        signer: server_key,
    };
    let (client_cert, client_key) = identity("NVIDIA GameStream Client");
    let mut client = ClientPairing::new(client_pin, client_cert, client_key, [7u8; 48]);
    let p1 = client.phase1_args();
    let host = AwaitingPin::new(arg(&p1, "salt"), arg(&p1, "clientcert"))?;
    let (host, plaincert) = host.enter_pin(host_pin, &server)?;
    let p2 = client.on_server_cert(&plaincert)?;
    let (host, challenge_response) =
        host.client_challenge(arg(&p2, "clientchallenge"), &server, [9u8; 32])?;
    let p3 = client.on_challenge_response(&challenge_response)?;
    let (host, pairing_secret) =
        host.server_challenge_resp(arg(&p3, "serverchallengeresp"), &server)?;
    // A Moonlight client checks the PIN here and stops on a mismatch.
    let p4 = client.on_pairing_secret(&pairing_secret)?;
    host.client_pairing_secret(arg(&p4, "clientpairingsecret"))
}

#[test]
fn matching_pins_pair_and_wrong_pins_are_caught_by_the_client() {
    let paired = pair("1234", "1234").unwrap();
    assert!(paired.pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(pair("1234", "4321").unwrap_err(), PairingError::Mismatch);
}

#[test]
fn a_client_that_skips_its_check_is_caught_by_the_host() {
    // Drive the host with a client that lies about its hash: the host must refuse.
    let (server_cert, server_key) = identity("host");
    let server = ServerIdentity {
        cert: server_cert,
        signer: server_key,
    };
    let (client_cert, client_key) = identity("client");
    let mut client = ClientPairing::new("1111", client_cert.clone(), client_key, [3u8; 48]);
    let p1 = client.phase1_args();
    let (host, plaincert) = AwaitingPin::new(arg(&p1, "salt"), arg(&p1, "clientcert"))
        .unwrap()
        .enter_pin("2222", &server)
        .unwrap();
    let p2 = client.on_server_cert(&plaincert).unwrap();
    let (host, resp) = host
        .client_challenge(arg(&p2, "clientchallenge"), &server, [1u8; 32])
        .unwrap();
    let p3 = client.on_challenge_response(&resp).unwrap();
    let (host, _secret) = host
        .server_challenge_resp(arg(&p3, "serverchallengeresp"), &server)
        .unwrap();
    // Forge phase 4 with a valid signature but the client's (wrong-key) hash.
    let forged = {
        let (_, key) = identity("client");
        let secret = [5u8; 16];
        let mut v = secret.to_vec();
        v.extend(key.sign(&secret).unwrap());
        hex::encode_lower(&v)
    };
    assert_eq!(
        host.client_pairing_secret(&forged).unwrap_err(),
        PairingError::Mismatch
    );
}

#[test]
fn key_derivation_is_sha256_of_salt_and_pin() {
    // SHA-256(16 zero bytes || "1234")[..16], computed independently with Python's
    // hashlib.
    let k = pairing_key(&[0u8; 16], "1234");
    assert_eq!(hex::encode_lower(&k), "e4ae0c82639990744974cc3495a82432");
    assert_eq!(validate_pin("12a4"), Err(PairingError::BadPin));
    assert_eq!(validate_pin("123"), Err(PairingError::BadPin));
    assert!(validate_pin("0000").is_ok());
}

#[test]
fn malformed_phase_parameters_are_errors() {
    assert!(matches!(
        AwaitingPin::new("00", "00"),
        Err(PairingError::BadParameter(_))
    ));
    assert!(matches!(
        AwaitingPin::new(&"00".repeat(16), "zz"),
        Err(PairingError::BadParameter(_))
    ));
    assert!(matches!(
        AwaitingPin::new(&"00".repeat(16), &hex::encode_lower(b"not a cert")),
        Err(PairingError::Certificate(_))
    ));
}
