//! Reading the service name out of a Host header value.

use std::borrow::Cow;

/// A Host value that is not `host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidHost;

/// The host part of a Host header value, normalised for lookup: without the port and one
/// trailing dot, lowercased. Borrows unless the host had uppercase letters.
///
/// Names are ASCII letters, digits, `-`, `_` and `.`; IP literals in brackets are accepted
/// (they never name a service, but they are not malformed).
pub(crate) fn normalize(value: &[u8]) -> Result<Cow<'_, str>, InvalidHost> {
    let value = value.trim_ascii();
    if value.first() == Some(&b'[') {
        let end = value.iter().position(|&b| b == b']').ok_or(InvalidHost)?;
        let (literal, port) = value.split_at(end + 1);
        check_port(port)?;
        let inside = literal
            .strip_prefix(b"[")
            .and_then(|l| l.strip_suffix(b"]"))
            .ok_or(InvalidHost)?;
        let valid = !inside.is_empty()
            && inside
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        return if valid {
            lowercase(literal)
        } else {
            Err(InvalidHost)
        };
    }
    let name = match value.iter().rposition(|&b| b == b':') {
        Some(colon) => {
            let (name, port) = value.split_at(colon);
            check_port(port)?;
            name
        }
        None => value,
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    let valid = !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        lowercase(name)
    } else {
        Err(InvalidHost)
    }
}

/// `port` is empty or `:` followed by up to five digits.
fn check_port(port: &[u8]) -> Result<(), InvalidHost> {
    if port.is_empty() {
        return Ok(());
    }
    let digits = port.strip_prefix(b":").ok_or(InvalidHost)?;
    if digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(InvalidHost)
    }
}

/// `ascii` (already checked to be ASCII) lowercased, borrowed when it already is.
fn lowercase(ascii: &[u8]) -> Result<Cow<'_, str>, InvalidHost> {
    let text = std::str::from_utf8(ascii).map_err(|_| InvalidHost)?;
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(text.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_port_case_and_trailing_dot() {
        for (raw, want) in [
            ("hello", "hello"),
            ("hello:8080", "hello"),
            ("HeLLo", "hello"),
            ("hello.", "hello"),
            ("HELLO.:80", "hello"),
            ("hello:", "hello"),
            (" hello ", "hello"),
            ("a.b-c_d", "a.b-c_d"),
            ("[::1]:8080", "[::1]"),
            ("[FE80::1]", "[fe80::1]"),
            ("127.0.0.1:80", "127.0.0.1"),
        ] {
            assert_eq!(normalize(raw.as_bytes()).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn borrows_when_already_normal() {
        assert!(matches!(normalize(b"hello:1"), Ok(Cow::Borrowed("hello"))));
    }

    #[test]
    fn rejects_malformed_hosts() {
        for raw in [
            "",
            " ",
            ":80",
            ".",
            "hello:http",
            "hello:123456",
            "a:b:c",
            "he llo",
            "hé",
            "hello/",
            "[::1",
            "[]",
            "[::1]x",
            "[zz]",
            "user@hello",
        ] {
            assert_eq!(normalize(raw.as_bytes()), Err(InvalidHost), "{raw:?}");
        }
        assert_eq!(normalize(&[0xff, b'a']), Err(InvalidHost));
    }
}
