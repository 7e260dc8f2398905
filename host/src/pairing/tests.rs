use std::sync::Arc;
use std::time::Duration;

use punktfunk_core::crypto::rsa::{CertInfo, RsaSigner, generate_identity};
use punktfunk_core::gamestream::pairing::{ClientPairing, PairingError, ServerIdentity};

use super::*;

fn identity(cn: &str) -> (CertInfo, RsaSigner) {
    let (pem, key) = generate_identity(cn).unwrap();
    (
        CertInfo::from_pem(pem.as_bytes()).unwrap(),
        RsaSigner::from_pkcs8(&key).unwrap(),
    )
}

fn arg(args: &str, name: &str) -> String {
    args.split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap()
        .to_owned()
}

async fn manager(pin_timeout: Duration) -> (Arc<PairingManager>, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
    let (cert, signer) = identity("host");
    let m = PairingManager::new(
        Arc::new(ServerIdentity { cert, signer }),
        store.clone(),
        pin_timeout,
        Duration::from_secs(5),
    );
    (Arc::new(m), store, dir)
}

/// Drives a full pairing with `client_pin` while the host user enters `host_pin`.
async fn attempt(
    m: &Arc<PairingManager>,
    host_pin: &str,
    client_pin: &str,
) -> (Result<(), String>, Outcome) {
    let (cert, signer) = identity("NVIDIA GameStream Client");
    let mut client = ClientPairing::new(
        client_pin,
        cert,
        signer,
        rand::random_iter()
            .take(48)
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap(),
    );
    let p1 = client.phase1_args();
    let mm = m.clone();
    let phase1 = tokio::spawn(async move {
        mm.get_server_cert(&arg(&p1, "salt"), &arg(&p1, "clientcert"))
            .await
    });
    // The user types the PIN once the request is waiting.
    while !m.waiting_for_pin() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outcome_rx = m.submit_pin(host_pin, Some("Couch tablet".into())).unwrap();
    let client_side = async {
        let plaincert = phase1.await.unwrap().map_err(|e| e.to_string())?;
        let p2 = client
            .on_server_cert(&plaincert)
            .map_err(|e| e.to_string())?;
        let resp = m
            .client_challenge(&arg(&p2, "clientchallenge"))
            .map_err(|e| e.to_string())?;
        let p3 = client
            .on_challenge_response(&resp)
            .map_err(|e| e.to_string())?;
        let secret = m
            .server_challenge_resp(&arg(&p3, "serverchallengeresp"))
            .map_err(|e| e.to_string())?;
        match client.on_pairing_secret(&secret) {
            Ok(p4) => {
                let paired = m
                    .client_pairing_secret(&arg(&p4, "clientpairingsecret"))
                    .await
                    .map_err(|e| e.to_string())?;
                if paired {
                    Ok(())
                } else {
                    Err("paired=0".into())
                }
            }
            Err(PairingError::Mismatch) => {
                // What Moonlight does: tell the host with /unpair and stop.
                m.client_aborted();
                Err("wrong pin".into())
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let result = client_side.await;
    (result, outcome_rx.await.unwrap())
}

#[tokio::test]
async fn right_pin_pairs_and_stores_the_client() {
    let (m, store, _dir) = manager(Duration::from_secs(5)).await;
    let (result, outcome) = attempt(&m, "5678", "5678").await;
    assert_eq!(result, Ok(()));
    let device = outcome.unwrap();
    assert_eq!(device.name, "Couch tablet");
    let stored = store
        .client_by_fingerprint(&device.fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Couch tablet");
    assert!(!m.waiting_for_pin());
}

#[tokio::test]
async fn wrong_pin_fails_cleanly_and_stores_nothing() {
    let (m, store, _dir) = manager(Duration::from_secs(5)).await;
    let (result, outcome) = attempt(&m, "1111", "2222").await;
    assert_eq!(result, Err("wrong pin".into()));
    assert_eq!(outcome, Err(PinError::WrongPin));
    assert!(store.list_clients().await.unwrap().is_empty());
    // The host is free for the next attempt.
    let (result, outcome) = attempt(&m, "3333", "3333").await;
    assert_eq!(result, Ok(()));
    assert!(outcome.is_ok());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_second_attempt_while_one_waits_is_refused() {
    let (m, _store, _dir) = manager(Duration::from_secs(5)).await;
    let (cert, _) = identity("a");
    let salt = "00".repeat(16);
    let cert_hex = punktfunk_core::gamestream::nvhttp::hex::encode_lower(&cert.pem);
    let mm = m.clone();
    let (s, c) = (salt.clone(), cert_hex.clone());
    let first = tokio::spawn(async move { mm.get_server_cert(&s, &c).await });
    while !m.waiting_for_pin() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = m.get_server_cert(&salt, &cert_hex).await;
    assert!(matches!(second, Err(PairRequestError::AlreadyInProgress)));
    assert_eq!(second.unwrap_err().status_code(), 409);
    // The client abandoning the first attempt frees the host.
    m.client_aborted();
    assert!(first.await.unwrap().is_err());
}

#[tokio::test]
async fn a_pin_that_never_comes_times_out_and_frees_the_host() {
    let (m, _store, _dir) = manager(Duration::from_millis(200)).await;
    let (cert, _) = identity("a");
    let cert_hex = punktfunk_core::gamestream::nvhttp::hex::encode_lower(&cert.pem);
    let r = m.get_server_cert(&"11".repeat(16), &cert_hex).await;
    assert!(matches!(r, Err(PairRequestError::PinTimeout)));
    assert_eq!(
        m.submit_pin("1234", None).unwrap_err(),
        PinError::NoPairingWaiting
    );
    assert!(!m.waiting_for_pin());
}

#[tokio::test]
async fn pins_and_phases_out_of_place_are_clear_errors() {
    let (m, _store, _dir) = manager(Duration::from_secs(1)).await;
    assert_eq!(
        m.submit_pin("1234", None).unwrap_err(),
        PinError::NoPairingWaiting
    );
    assert_eq!(m.submit_pin("12", None).unwrap_err(), PinError::BadPin);
    assert!(matches!(
        m.client_challenge("00"),
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.server_challenge_resp("00"),
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.client_pairing_secret("00").await,
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.get_server_cert("00", "zz").await,
        Err(PairRequestError::Protocol(_))
    ));
    assert_eq!(
        m.pair_with_pin("1234", None).await,
        Err(PinError::NoPairingWaiting)
    );
}
