//! The host's identity: an RSA-2048 key and self-signed certificate, a stable unique
//! id and a host name.
//!
//! Clients pin the certificate at pairing time (moonlight-qt checks the TLS certificate
//! against the one it paired with), so it is created once and never replaced behind the
//! user's back. The key and certificate live as files in the state directory (written
//! to temporary names, synced, then renamed); the unique id and default host name live
//! in the store, inserted atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use punktfunk_core::crypto::rsa::{CertInfo, RsaSigner, generate_identity};
use punktfunk_core::gamestream::pairing::ServerIdentity;

use crate::store::Store;

/// The loaded identity.
#[derive(Debug)]
pub struct HostIdentity {
    /// The certificate.
    pub cert: CertInfo,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    /// GameStream `uniqueid` (an uppercase UUID, as Sunshine's).
    pub unique_id: String,
    /// The host name clients show (config override, else the one stored at first start).
    pub hostname: String,
}

const KEY_FILE: &str = "host.key";
const CERT_FILE: &str = "host.crt";

impl HostIdentity {
    /// Loads the identity from `state_dir` and the store, creating what is missing on
    /// first start. `hostname_override` comes from the config file.
    pub async fn load_or_create(
        state_dir: &Path,
        store: &Store,
        hostname_override: Option<&str>,
    ) -> Result<Self> {
        let (cert, key_pkcs8) = load_or_create_keypair(state_dir)?;
        let unique_id: String = store
            .get_or_insert_setting("host.unique_id", new_unique_id)
            .await
            .context("storing the host's unique id")?;
        let stored_name: String = store
            .get_or_insert_setting("host.hostname", machine_hostname)
            .await
            .context("storing the host name")?;
        Ok(Self {
            cert,
            key_pkcs8,
            unique_id,
            hostname: hostname_override.map_or(stored_name, str::to_owned),
        })
    }

    /// The pairing identity (certificate and signing key).
    pub fn server_identity(&self) -> Result<ServerIdentity> {
        Ok(ServerIdentity {
            cert: self.cert.clone(),
            signer: RsaSigner::from_pkcs8(&self.key_pkcs8).context("loading the host key")?,
        })
    }
}

fn new_unique_id() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0FFF,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3FFF) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}

/// The machine's host name, or "punktfunk" when it has none.
fn machine_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "punktfunk".to_owned())
}

fn load_or_create_keypair(state_dir: &Path) -> Result<(CertInfo, Vec<u8>)> {
    fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state directory {}", state_dir.display()))?;
    let key_path = state_dir.join(KEY_FILE);
    let cert_path = state_dir.join(CERT_FILE);
    match (key_path.exists(), cert_path.exists()) {
        (true, true) => {
            let key_pem =
                fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
            let cert_pem =
                fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
            let key = pem::parse(&key_pem)
                .with_context(|| format!("{} is not a PEM key", key_path.display()))?;
            let cert = CertInfo::from_pem(&cert_pem)
                .with_context(|| format!("{} is not a usable certificate", cert_path.display()))?;
            let signer = RsaSigner::from_pkcs8(key.contents())
                .with_context(|| format!("{} is not an RSA PKCS#8 key", key_path.display()))?;
            if signer.public_key() != cert.rsa_public_key.as_slice() {
                bail!(
                    "{} and {} do not belong together; move both away to create a new identity \
                     (paired clients will have to pair again)",
                    key_path.display(),
                    cert_path.display()
                );
            }
            Ok((cert, key.contents().to_vec()))
        }
        (false, true) => bail!(
            "{} exists but its key {} is missing; restore the key, or move the certificate away \
             to create a new identity (paired clients will have to pair again)",
            cert_path.display(),
            key_path.display()
        ),
        // Nothing yet, or a key without certificate: a first start that was interrupted
        // before the certificate was written, so no client can have seen it.
        _ => {
            let (cert_pem, key_der) = generate_identity("punktfunk host")
                .context("generating the host key and certificate")?;
            let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", key_der.clone()));
            write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
            sync_dir(state_dir)?;
            tracing::info!(cert = %cert_path.display(), "created the host identity");
            let cert =
                CertInfo::from_pem(cert_pem.as_bytes()).context("parsing the new certificate")?;
            Ok((cert, key_der))
        }
    }
}

/// Writes `data` to `path` via a synced temporary file and a rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let a = HostIdentity::load_or_create(dir.path(), &store, None)
            .await
            .unwrap();
        let b = HostIdentity::load_or_create(dir.path(), &store, None)
            .await
            .unwrap();
        assert_eq!(a.cert, b.cert);
        assert_eq!(a.unique_id, b.unique_id);
        assert_eq!(a.unique_id.len(), 36);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let c = HostIdentity::load_or_create(dir.path(), &store, Some("den"))
            .await
            .unwrap();
        assert_eq!(c.hostname, "den");
        assert!(c.server_identity().is_ok());
    }

    #[tokio::test]
    async fn a_lost_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        HostIdentity::load_or_create(dir.path(), &store, None)
            .await
            .unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = HostIdentity::load_or_create(dir.path(), &store, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }
}
