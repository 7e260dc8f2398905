//! Who may talk to the web console, and by which name.
//!
//! Three checks run before any route, on every request (pages included):
//!
//! - **Peer address.** By default only the local network may connect ([`is_lan`]):
//!   a streaming box has no business answering the internet, even with a login.
//!   `[web] access = "any"` or `allowed_networks` widen it.
//! - **Host header.** A browser names the host it thinks it talks to. DNS rebinding
//!   points an attacker's name (`evil.example`) at the box's LAN address, so the page
//!   the attacker serves becomes "same origin" with the console; refusing every Host
//!   that is not an IP address, `localhost`, the box's own name (bare or under `.local`,
//!   `.lan`, `.home.arpa`) or a configured name defeats that.
//! - **Origin.** A state-changing request that carries an `Origin` (every browser
//!   sends one on POST/PUT/PATCH/DELETE) must come from the console's own origin; a
//!   cross-site one is refused before it reaches a handler, on top of SameSite=Strict
//!   cookies and the CSRF token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

pub use crate::net::cidr::{Cidr, CidrError};

/// Whether `ip` is on the local network: loopback, RFC 1918 private, link-local,
/// IPv6 unique-local, or the 100.64/10 shared range (Tailscale and other overlay
/// networks hand those out).
pub fn is_lan(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let cgnat = Cidr::new(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10);
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || cgnat.contains(ip)
        }
        IpAddr::V6(v6) => {
            let ula = Cidr::new(IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7);
            let link_local = Cidr::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10);
            v6.is_loopback() || ula.contains(ip) || link_local.contains(ip)
        }
    }
}

/// The access rules, resolved from `[web]`.
#[derive(Debug, Clone)]
pub struct Policy {
    any_peer: bool,
    networks: Vec<Cidr>,
    extra_hosts: Vec<String>,
}

/// Why a request was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The peer is outside the allowed networks.
    #[error(
        "the punktfunk console only answers the local network; to allow {0}, add it to \
         [web] allowed_networks (or set access = \"any\") in /etc/punktfunk/host.toml"
    )]
    Peer(IpAddr),
    /// The Host header names something the console does not answer to.
    #[error(
        "this console does not answer to the name {0:?}; open it by the box's IP address \
         or host name, or add the name to [web] allowed_hosts in /etc/punktfunk/host.toml"
    )]
    Host(String),
    /// A state-changing request from another site.
    #[error("cross-site request refused: use the console's own page")]
    Origin,
}

impl Policy {
    /// Builds the policy (`allowed_networks` were parsed when the config loaded).
    pub fn new(web: &crate::config::WebConfig) -> Self {
        Self {
            any_peer: web.access == crate::config::WebAccess::Any,
            networks: web.allowed_networks.clone(),
            extra_hosts: web
                .allowed_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Checks the peer address.
    pub fn check_peer(&self, peer: IpAddr) -> Result<(), Refusal> {
        let peer = peer.to_canonical();
        if self.any_peer || is_lan(peer) || self.networks.iter().any(|n| n.contains(peer)) {
            Ok(())
        } else {
            Err(Refusal::Peer(peer))
        }
    }

    /// Checks a `Host` header value (with or without port) against the names the
    /// console answers to; `own_names` are the box's names (the current host name, the
    /// one it started with, the machine's).
    pub fn check_host(&self, host: &str, own_names: &[&str]) -> Result<(), Refusal> {
        let name = host_name(host).ok_or_else(|| Refusal::Host(host.to_owned()))?;
        if name.parse::<IpAddr>().is_ok() || name == "localhost" {
            return Ok(());
        }
        let mine = own_names.iter().any(|own| {
            let own = own.trim().to_ascii_lowercase();
            !own.is_empty()
                && (name == own
                    || ["local", "lan", "home.arpa"]
                        .iter()
                        .any(|suffix| name == format!("{own}.{suffix}")))
        });
        if mine || self.extra_hosts.contains(&name) {
            Ok(())
        } else {
            Err(Refusal::Host(name))
        }
    }
}

/// The host part of a `Host` header, lowercased, without port, brackets or a trailing
/// dot; `None` if it is malformed.
pub fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        v6.parse::<Ipv6Addr>().ok()?;
        v6.to_owned()
    } else {
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
            Some(_) => return None,
            None => host,
        };
        name.trim_end_matches('.').to_owned()
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    ok.then(|| name.to_ascii_lowercase())
}

/// Whether an `Origin` header value is the console's own origin for the request's
/// `Host` (scheme https, same host and port).
pub fn same_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("https://")
        .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::{WebAccess, WebConfig};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lan_ranges() {
        for lan in [
            "127.0.0.1",
            "10.2.3.4",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "169.254.3.3",
            "100.101.102.103",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:192.168.0.9",
        ] {
            assert!(is_lan(ip(lan)), "{lan}");
        }
        for wan in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_lan(ip(wan)), "{wan}");
        }
    }

    #[test]
    fn peer_policy() {
        let lan = Policy::new(&WebConfig::default());
        assert!(lan.check_peer(ip("192.168.1.5")).is_ok());
        let err = lan.check_peer(ip("203.0.113.9")).unwrap_err();
        assert!(err.to_string().contains("allowed_networks"), "{err}");
        let widened = Policy::new(&WebConfig {
            allowed_networks: vec![Cidr::parse("203.0.113.0/24").unwrap()],
            ..WebConfig::default()
        });
        assert!(widened.check_peer(ip("203.0.113.9")).is_ok());
        assert!(widened.check_peer(ip("198.51.100.1")).is_err());
        let any = Policy::new(&WebConfig {
            access: WebAccess::Any,
            ..WebConfig::default()
        });
        assert!(any.check_peer(ip("198.51.100.1")).is_ok());
    }

    #[test]
    fn host_policy_blocks_rebinding_names() {
        let p = Policy::new(&WebConfig {
            allowed_hosts: vec!["Console.Example.".into()],
            ..WebConfig::default()
        });
        for ok in [
            "192.168.1.5:47990",
            "192.168.1.5",
            "[fe80::1]:47990",
            "[::1]",
            "localhost:47990",
            "Rig:47990",
            "rig.local",
            "rig.lan:47990",
            "rig.home.arpa.",
            "console.example:443",
        ] {
            assert!(p.check_host(ok, &["rig"]).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:47990",
            "rig.evil.example",
            "rigs.local",
            "",
            "[::1",
            "[::1]x",
            "a b",
            "host:port",
            "192.168.1.5:47990:1",
        ] {
            assert!(p.check_host(bad, &["rig"]).is_err(), "{bad:?}");
        }
        // Several own names: after a rename, the old one keeps working until restart.
        assert!(p.check_host("old.local", &["new", "old"]).is_ok());
        assert!(p.check_host("other.local", &["new", "old"]).is_err());
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(
            "https://192.168.1.5:47990",
            "192.168.1.5:47990"
        ));
        assert!(!same_origin(
            "http://192.168.1.5:47990",
            "192.168.1.5:47990"
        ));
        assert!(!same_origin("https://evil.example", "192.168.1.5:47990"));
        assert!(!same_origin("null", "192.168.1.5:47990"));
    }

    proptest! {
        #[test]
        fn host_parsing_never_panics(s in "\\PC{0,80}") {
            let _ = host_name(&s);
            let _ = Policy::new(&WebConfig::default()).check_host(&s, &["rig"]);
        }
    }
}
