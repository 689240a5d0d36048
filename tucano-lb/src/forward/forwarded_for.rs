//! Appending the client's address to `X-Forwarded-For`.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use tracing::debug;

use crate::headers::X_FORWARDED_FOR;

/// Appends `client` to `X-Forwarded-For`, joining any values already there (one header
/// line or several) into one comma-separated list. An IPv4 client seen over IPv6 is written
/// as IPv4.
pub(crate) fn append(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_canonical().to_string();
    let mut value: Vec<u8> = Vec::new();
    for existing in headers.get_all(X_FORWARDED_FOR) {
        let existing = existing.as_bytes().trim_ascii();
        if !existing.is_empty() {
            value.extend_from_slice(existing);
            value.extend_from_slice(b", ");
        }
    }
    value.extend_from_slice(client.as_bytes());
    let value = HeaderValue::from_maybe_shared(Bytes::from(value)).or_else(|error| {
        debug!(%error, "x-forwarded-for could not be extended; replacing it");
        HeaderValue::from_str(&client)
    });
    match value {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn starts_the_list() {
        let mut headers = HeaderMap::new();
        append(&mut headers, ip("10.0.0.1"));
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
        append(&mut headers, ip("::1"));
        let values: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(values, ["203.0.113.7, 198.51.100.1, 10.1.1.1, ::1"]);
    }

    #[test]
    fn writes_mapped_ipv4_as_ipv4() {
        let mut headers = HeaderMap::new();
        let mapped = Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]);
        append(&mut headers, IpAddr::V6(mapped));
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");
    }
}
