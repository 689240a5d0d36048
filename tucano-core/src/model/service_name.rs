//! Service names: RFC 1123 DNS labels, so a name can be a Host header.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest allowed service name (a DNS label).
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// A validated service name: 1 to 63 characters of lowercase ASCII letters, digits and `-`,
/// starting with a letter and not ending with `-`.
///
/// The load balancer routes by the request's Host header, so a service name is exactly the
/// host a client sends (`curl -H 'Host: hello'`).
///
/// ```
/// use tucano_core::ServiceName;
/// let name: ServiceName = "hello".parse().unwrap();
/// assert_eq!(name.as_str(), "hello");
/// assert!("Hello".parse::<ServiceName>().is_err());
/// assert!("-x".parse::<ServiceName>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

/// Why a string is not a valid [`ServiceName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceNameError {
    /// The name is empty.
    #[error("service name is empty")]
    Empty,
    /// The name is longer than a DNS label.
    #[error("service name {0:?} is longer than {MAX_SERVICE_NAME_LEN} characters")]
    TooLong(String),
    /// The name has a character other than `a-z`, `0-9` or `-`.
    #[error(
        "service name {name:?} has {found:?}; only lowercase letters, digits and '-' are allowed"
    )]
    BadCharacter {
        /// The rejected name.
        name: String,
        /// The first offending character.
        found: char,
    },
    /// The name does not start with a letter or ends with `-`.
    #[error("service name {0:?} must start with a lowercase letter and end with a letter or digit")]
    BadEdge(String),
}

impl ServiceName {
    /// Validates `name` as a DNS label.
    pub fn new(name: impl Into<String>) -> Result<Self, ServiceNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(ServiceNameError::Empty);
        }
        if name.len() > MAX_SERVICE_NAME_LEN {
            return Err(ServiceNameError::TooLong(name));
        }
        if let Some(found) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(ServiceNameError::BadCharacter { name, found });
        }
        let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
        if !starts_with_letter || name.ends_with('-') {
            return Err(ServiceNameError::BadEdge(name));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = ServiceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ServiceName {
    type Error = ServiceNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> Self {
        name.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "hello", "web-1", "a1-b2", &"x".repeat(63)] {
            assert!(ServiceName::new(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(ServiceName::new(""), Err(ServiceNameError::Empty));
        assert!(matches!(
            ServiceName::new("x".repeat(64)),
            Err(ServiceNameError::TooLong(_))
        ));
        for bad in ["Hello", "he llo", "hé", "a.b", "a_b"] {
            assert!(
                matches!(
                    ServiceName::new(bad),
                    Err(ServiceNameError::BadCharacter { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["-a", "1abc", "abc-"] {
            assert!(
                matches!(ServiceName::new(bad), Err(ServiceNameError::BadEdge(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_validates() {
        let ok: ServiceName = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(ok.as_str(), "web");
        assert!(serde_json::from_str::<ServiceName>("\"Web\"").is_err());
    }
}
