//! Removing the headers that describe one connection rather than the message (RFC 9110
//! section 7.6.1), which a proxy must not pass on.

use http::HeaderMap;
use http::header::{CONNECTION, HOST, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

/// Hop-by-hop headers removed whether or not `Connection` names them (`Proxy-*` headers are
/// removed by prefix).
const ALWAYS: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes from `headers`: `Connection` and every header it names (except `Host`, which
/// routing depends on), `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and
/// `Upgrade`. Allocates only when the message has a `Connection` or `Proxy-*` header.
pub(crate) fn strip(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<_> = headers.get_all(CONNECTION).iter().cloned().collect();
        for value in &named {
            for token in value.as_bytes().split(|&b| b == b',') {
                let Ok(token) = std::str::from_utf8(token.trim_ascii()) else {
                    continue;
                };
                if !token.is_empty() && !token.eq_ignore_ascii_case(HOST.as_str()) {
                    headers.remove(token);
                }
            }
        }
    }
    for name in &ALWAYS {
        headers.remove(name);
    }
    if headers.keys().any(is_proxy_header) {
        let proxy_headers: Vec<_> = headers
            .keys()
            .filter(|n| is_proxy_header(n))
            .cloned()
            .collect();
        for name in proxy_headers {
            headers.remove(name);
        }
    }
}

fn is_proxy_header(name: &http::HeaderName) -> bool {
    name.as_str().starts_with("proxy-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut headers = map(&[
            ("host", "hello"),
            ("connection", "keep-alive, X-Private , host"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("x-other", "1"),
            ("proxy-authorization", "Basic xyz"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
            ("content-length", "3"),
        ]);
        strip(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host", "x-kept"]);
    }

    #[test]
    fn tolerates_odd_connection_values() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_bytes(b",, \xff ,bad name,").unwrap(),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip(&mut headers);
        assert_eq!(headers.len(), 1);
    }
}
