//! IP networks in CIDR notation (`[web] allowed_networks`), parsed once when the
//! config loads.

use std::net::IpAddr;

use serde::Deserialize;
use thiserror::Error;

/// An IP network in CIDR notation. Read from the config as a string
/// (`"192.0.2.0/24"`), so a malformed one fails the config load with its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected an address/prefix like 192.0.2.0/24 or fd00::/8")]
pub struct CidrError;

impl Cidr {
    /// The network `addr/prefix`; a prefix longer than the address is cut to it.
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// Parses `addr/prefix` (a bare address is a /32 or /128).
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| CidrError)?,
            None => max,
        };
        if prefix > max {
            return Err(CidrError);
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, CidrError> {
        Self::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let net = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(ip("192.0.2.77")));
        assert!(net.contains(ip("::ffff:192.0.2.1")));
        assert!(!net.contains(ip("192.0.3.1")));
        assert!(!net.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8:1::5"))
        );
        assert!(Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.3")));
        assert!(!Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.4")));
        for bad in [
            "",
            "lan",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0/8",
        ] {
            assert_eq!(Cidr::parse(bad), Err(CidrError), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = Cidr::parse(&s);
        }
    }
}
