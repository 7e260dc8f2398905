//! mDNS discovery: the host announces `_nvstream._tcp` (instance = the host name,
//! port = the GameStream HTTP port), as GameStream hosts do, so Moonlight lists it
//! without the user typing an address.
//!
//! The embedded responder (mdns-sd) answers on every non-loopback interface and
//! re-checks interfaces and addresses every few seconds, so a cable plugged in or a
//! new DHCP lease is announced without a restart. Stopping sends goodbye packets:
//! clients drop the host at once instead of waiting for the records to expire.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

/// The service type Moonlight browses for.
pub const SERVICE_TYPE: &str = "_nvstream._tcp.local.";
/// How often interfaces and addresses are re-read (seconds).
const IP_CHECK_SECS: u32 = 2;

/// A running announcement; [`Advertiser::stop`] withdraws it.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertiser")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

/// A DNS label for `name`: letters, digits and hyphens, as `<label>.local.` needs.
pub fn host_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "punktfunk".to_owned()
    } else {
        label.to_owned()
    }
}

impl Advertiser {
    /// Announces the host `hostname` with its HTTP port `http_port`.
    pub fn start(hostname: &str, http_port: u16) -> Result<Self> {
        let daemon = ServiceDaemon::new().context("starting the mDNS responder")?;
        // Loopback is no LAN: nobody else could use what it announces there.
        daemon
            .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
            .context("configuring the mDNS interfaces")?;
        daemon
            .set_ip_check_interval(IP_CHECK_SECS)
            .context("configuring the mDNS responder")?;
        let host = format!("{}.local.", host_label(hostname));
        let no_addresses: &[IpAddr] = &[];
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            hostname,
            &host,
            no_addresses,
            http_port,
            None::<std::collections::HashMap<String, String>>,
        )
        .context("describing the mDNS service")?
        // Addresses come from the interfaces, and follow them.
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        daemon
            .register(info)
            .context("announcing the host over mDNS")?;
        tracing::info!(service = %fullname, host, port = http_port, "announcing the host over mDNS");
        Ok(Self { daemon, fullname })
    }

    /// Withdraws the announcement (goodbye packets) and stops the responder. Blocks
    /// for up to a second: call it off the async threads.
    pub fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_dns_labels() {
        assert_eq!(host_label("living-room"), "living-room");
        assert_eq!(host_label("Mein Wohnzimmer PC"), "Mein-Wohnzimmer-PC");
        assert_eq!(host_label("über"), "ber");
        assert_eq!(host_label("***"), "punktfunk");
        assert_eq!(host_label(&"a".repeat(80)).len(), 63);
    }
}
