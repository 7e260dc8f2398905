//! Which network interface an address belongs to, for the `mac` of `/serverinfo`
//! (clients use it for Wake-on-LAN).

use std::ffi::CStr;
use std::net::IpAddr;

/// The MAC address of the interface holding `ip`, as `aa:bb:cc:dd:ee:ff`; the
/// all-zero address Sunshine sends when there is none (loopback, unknown).
pub fn mac_for(ip: IpAddr) -> String {
    interface_of(ip)
        .and_then(|name| std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 17)
        .unwrap_or_else(|| "00:00:00:00:00:00".to_owned())
}

fn interface_of(ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return None;
    }
    addresses()
        .into_iter()
        .find(|(_, addr)| *addr == ip)
        .map(|(name, _)| name)
}

/// Every address of every interface, as (interface name, address).
pub fn addresses() -> Vec<(String, IpAddr)> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `addrs` with a list we free below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned; entries stay valid until
        // freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let addr = match family {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes())
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => continue,
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        found.push((name, addr));
    }
    // SAFETY: frees the list getifaddrs allocated; nothing refers to it any more.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_unknown_addresses_get_the_zero_mac() {
        assert_eq!(mac_for("127.0.0.1".parse().unwrap()), "00:00:00:00:00:00");
        assert_eq!(mac_for("203.0.113.7".parse().unwrap()), "00:00:00:00:00:00");
    }

    #[test]
    fn addresses_include_loopback() {
        let all = addresses();
        assert!(
            all.iter().any(|(_, a)| a.is_loopback()),
            "no loopback address in {all:?}"
        );
    }
}
