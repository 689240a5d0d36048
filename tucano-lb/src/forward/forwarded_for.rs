//! Appending the client's address to `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use tracing::debug;

use crate::headers::X_FORWARDED_FOR;

/// A client connection's address, with its IP written once for `X-Forwarded-For` (an IPv4
/// client seen over IPv6 written as IPv4), so that each request on the connection reuses it.
#[derive(Clone, Debug)]
pub(crate) struct ClientAddress {
    address: SocketAddr,
    forwarded: HeaderValue,
}

impl ClientAddress {
    pub fn new(address: SocketAddr) -> Self {
        let ip = address.ip().to_canonical().to_string();
        let forwarded = HeaderValue::from_maybe_shared(Bytes::from(ip))
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self { address, forwarded }
    }

    /// The client's IP address.
    pub fn ip(&self) -> IpAddr {
        self.address.ip()
    }
}

/// Appends `client` to `X-Forwarded-For`, joining any values already there (one header
/// line or several) into one comma-separated list. Without a value already there, this only
/// clones the client's prepared value.
pub(crate) fn append(headers: &mut HeaderMap, client: &ClientAddress) {
    if !headers.contains_key(X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, client.forwarded.clone());
        return;
    }
    let mut value: Vec<u8> = Vec::new();
    for existing in headers.get_all(X_FORWARDED_FOR) {
        let existing = existing.as_bytes().trim_ascii();
        if !existing.is_empty() {
            value.extend_from_slice(existing);
            value.extend_from_slice(b", ");
        }
    }
    value.extend_from_slice(client.forwarded.as_bytes());
    let value = HeaderValue::from_maybe_shared(Bytes::from(value)).unwrap_or_else(|error| {
        debug!(%error, "x-forwarded-for could not be extended; replacing it");
        client.forwarded.clone()
    });
    headers.insert(X_FORWARDED_FOR, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn ip(s: &str) -> ClientAddress {
        ClientAddress::new(SocketAddr::new(s.parse().unwrap(), 40000))
    }

    #[test]
    fn starts_the_list() {
        let mut headers = HeaderMap::new();
        append(&mut headers, &ip("10.0.0.1"));
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1");
    }

    #[test]
    fn appends_to_every_existing_line() {
        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("198.51.100.1, 10.1.1.1"),
        );
        append(&mut headers, &ip("::1"));
        let values: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(values, ["203.0.113.7, 198.51.100.1, 10.1.1.1, ::1"]);
    }

    #[test]
    fn writes_mapped_ipv4_as_ipv4() {
        let mut headers = HeaderMap::new();
        let mapped = Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]);
        let client = ClientAddress::new(SocketAddr::new(IpAddr::V6(mapped), 40000));
        append(&mut headers, &client);
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");
    }
}
