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

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20));

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, last))
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
        mm.get_server_cert(&arg(&p1, "salt"), &arg(&p1, "clientcert"), CLIENT, None)
            .await
    });
    // The user types the PIN once the request is waiting.
    while !m.waiting_for_pin() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outcome_rx = m
        .submit_pin(host_pin, Some("Couch tablet".into()), None)
        .unwrap();
    let client_side = async {
        let plaincert = phase1.await.unwrap().map_err(|e| e.to_string())?;
        let p2 = client
            .on_server_cert(&plaincert)
            .map_err(|e| e.to_string())?;
        let resp = m
            .client_challenge(CLIENT, &arg(&p2, "clientchallenge"))
            .map_err(|e| e.to_string())?;
        let p3 = client
            .on_challenge_response(&resp)
            .map_err(|e| e.to_string())?;
        let secret = m
            .server_challenge_resp(CLIENT, &arg(&p3, "serverchallengeresp"))
            .map_err(|e| e.to_string())?;
        match client.on_pairing_secret(&secret) {
            Ok(p4) => {
                let paired = m
                    .client_pairing_secret(CLIENT, &arg(&p4, "clientpairingsecret"))
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
                m.client_aborted(CLIENT);
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
async fn several_attempts_wait_and_a_pin_goes_only_to_the_chosen_one() {
    let (m, _store, _dir) = manager(Duration::from_secs(5)).await;
    let (cert, _) = identity("a");
    let salt = "00".repeat(16);
    let cert_hex = punktfunk_core::gamestream::nvhttp::hex::encode_lower(&cert.pem);
    let start = |addr: IpAddr, device: &str| {
        let (mm, s, c, d) = (m.clone(), salt.clone(), cert_hex.clone(), device.to_owned());
        tokio::spawn(async move { mm.get_server_cert(&s, &c, addr, Some(d)).await })
    };
    let held = start(ip(66), "held");
    let real = start(ip(20), "roth");
    while m.waiting().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiting = m.waiting();
    assert_eq!(
        waiting
            .iter()
            .map(|w| (w.address, w.device.clone().unwrap()))
            .collect::<Vec<_>>(),
        vec![(ip(66), "held".into()), (ip(20), "roth".into())]
    );
    // With two waiting, a PIN without a choice goes nowhere.
    assert!(matches!(
        m.submit_pin("1234", None, None),
        Err(PinError::Ambiguous(list)) if list.contains("192.168.1.20") && list.contains("192.168.1.66")
    ));
    assert_eq!(
        m.submit_pin("1234", None, Some(999)).unwrap_err(),
        PinError::NoSuchRequest(999)
    );
    // Another address's /unpair does not touch either attempt.
    m.client_aborted(ip(99));
    assert_eq!(m.waiting().len(), 2);
    // The PIN typed for the real client reaches it and only it.
    let _outcome = m.submit_pin("1234", None, Some(waiting[1].id)).unwrap();
    assert!(
        real.await.unwrap().is_ok(),
        "the chosen attempt got its PIN"
    );
    assert_eq!(
        m.waiting().iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![waiting[0].id]
    );
    // The later phases of one client never advance another's attempt.
    assert!(matches!(
        m.client_challenge(ip(66), "00"),
        Err(PairRequestError::OutOfOrder)
    ));
    m.client_aborted(ip(66));
    assert!(held.await.unwrap().is_err());
    assert!(m.waiting().is_empty());
}

#[tokio::test]
async fn pending_attempts_are_bounded_one_per_address() {
    let (m, _store, _dir) = manager(Duration::from_secs(5)).await;
    let (cert, _) = identity("a");
    let salt = "00".repeat(16);
    let cert_hex = punktfunk_core::gamestream::nvhttp::hex::encode_lower(&cert.pem);
    let mut tasks = Vec::new();
    for last in 0..MAX_PENDING as u8 {
        let (mm, s, c) = (m.clone(), salt.clone(), cert_hex.clone());
        tasks.push(tokio::spawn(async move {
            mm.get_server_cert(&s, &c, ip(100 + last), None).await
        }));
    }
    while m.waiting().len() < MAX_PENDING {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let over = m.get_server_cert(&salt, &cert_hex, ip(250), None).await;
    assert!(matches!(over, Err(PairRequestError::AlreadyInProgress)));
    assert_eq!(over.unwrap_err().status_code(), 409);
    // A second request from a waiting address replaces that address's attempt.
    let (mm, s, c) = (m.clone(), salt.clone(), cert_hex.clone());
    let again = tokio::spawn(async move { mm.get_server_cert(&s, &c, ip(100), None).await });
    assert!(
        tasks.remove(0).await.unwrap().is_err(),
        "the replaced attempt ends"
    );
    while m.waiting().iter().filter(|w| w.address == ip(100)).count() != 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.waiting().len(), MAX_PENDING);
    for last in 0..MAX_PENDING as u8 {
        m.client_aborted(ip(100 + last));
    }
    assert!(again.await.unwrap().is_err());
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
}

#[tokio::test]
async fn a_pin_that_never_comes_times_out_and_frees_the_host() {
    let (m, _store, _dir) = manager(Duration::from_millis(200)).await;
    let (cert, _) = identity("a");
    let cert_hex = punktfunk_core::gamestream::nvhttp::hex::encode_lower(&cert.pem);
    let r = m
        .get_server_cert(&"11".repeat(16), &cert_hex, CLIENT, None)
        .await;
    assert!(matches!(r, Err(PairRequestError::PinTimeout)));
    assert_eq!(
        m.submit_pin("1234", None, None).unwrap_err(),
        PinError::NoPairingWaiting
    );
    assert!(!m.waiting_for_pin());
}

#[tokio::test]
async fn pins_and_phases_out_of_place_are_clear_errors() {
    let (m, _store, _dir) = manager(Duration::from_secs(1)).await;
    assert_eq!(
        m.submit_pin("1234", None, None).unwrap_err(),
        PinError::NoPairingWaiting
    );
    assert_eq!(
        m.submit_pin("12", None, None).unwrap_err(),
        PinError::BadPin
    );
    assert!(matches!(
        m.client_challenge(CLIENT, "00"),
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.server_challenge_resp(CLIENT, "00"),
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.client_pairing_secret(CLIENT, "00").await,
        Err(PairRequestError::OutOfOrder)
    ));
    assert!(matches!(
        m.get_server_cert("00", "zz", CLIENT, None).await,
        Err(PairRequestError::Protocol(_))
    ));
    assert_eq!(
        m.pair_with_pin("1234", None, None).await,
        Err(PinError::NoPairingWaiting)
    );
}
