//! IP blocks: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
//!
//! Twenty lines of masking do not justify a dependency (`ipnet` would add parsing and
//! iteration the filter never uses). Host bits below the prefix are masked off, as Envoy's
//! `CidrRange` does, and IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match IPv4 blocks.

use std::net::IpAddr;

/// A parsed CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| "invalid IP address")?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(digits) if !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                match digits.parse::<u8>() {
                    Ok(prefix) if prefix <= max => prefix,
                    _ if max == 32 => return Err("prefix length must be 0-32 for IPv4"),
                    _ => return Err("prefix length must be 0-128 for IPv6"),
                }
            }
            Some(_) => return Err("invalid prefix length"),
        };
        Ok(Self { network: mask(address, prefix), prefix })
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & bits).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & bits).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn matches_at_the_prefix_boundary() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.0.0")));
        assert!(block.contains(ip("10.1.255.255")));
        assert!(!block.contains(ip("10.2.0.0")));
        assert!(!block.contains(ip("10.0.255.255")));
        assert!(block.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped peers match IPv4 blocks");
        assert!(!block.contains(ip("::1")));
    }

    #[test]
    fn single_addresses_zero_prefixes_and_ipv6() {
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
    }

    #[test]
    fn host_bits_are_masked() {
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap(), Cidr::parse("10.0.0.0/8").unwrap());
    }

    #[test]
    fn rejects_malformed_blocks() {
        for (text, problem) in [
            ("10.0.0.0/33", "prefix length must be 0-32 for IPv4"),
            ("::/129", "prefix length must be 0-128 for IPv6"),
            ("10.0.0.0/", "invalid prefix length"),
            ("10.0.0.0/+8", "invalid prefix length"),
            ("10.0.0.0/08x", "invalid prefix length"),
            ("10.0.0/8", "invalid IP address"),
            ("example.com", "invalid IP address"),
            ("", "invalid IP address"),
        ] {
            assert_eq!(Cidr::parse(text), Err(problem), "{text}");
        }
    }
}
