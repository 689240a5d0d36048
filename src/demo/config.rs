//! [`DemoConfig`]: where the demo listens and who it says it is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::DemoError;

/// Environment variable holding the TCP port to listen on (required by [`DemoConfig::from_env`]).
pub const ENV_PORT: &str = "PORT";
/// Environment variable holding the instance id reported by `GET /` (optional).
pub const ENV_INSTANCE_ID: &str = "TUCANO_INSTANCE_ID";
/// Environment variable holding the service name reported by `GET /` (optional).
pub const ENV_SERVICE: &str = "TUCANO_SERVICE";
/// Environment variable overriding the IP address to bind (optional, default `0.0.0.0`).
pub const ENV_BIND: &str = "TUCANO_DEMO_BIND";
/// Environment variable adding a fixed latency, in milliseconds, to every request but
/// `/healthz` (optional, default 0): makes instances of different speeds for experiments.
pub const ENV_DELAY_MS: &str = "TUCANO_DEMO_DELAY_MS";
/// Environment variable holding how many requests at once the instance counts as full load
/// (optional, default 100): every response carries `x-tucano-load: <in flight / capacity>`.
pub const ENV_CAPACITY: &str = "TUCANO_DEMO_CAPACITY";
/// Default of [`ENV_CAPACITY`].
pub const DEFAULT_CAPACITY: u32 = 100;

/// Configuration of one demo server.
///
/// Built from the environment with [`DemoConfig::from_env`] (what the `tucano-demo` binary does) or by hand with
/// [`DemoConfig::new`] and the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// IP address to bind; `0.0.0.0` by default so the demo is reachable from outside a container.
    pub bind: IpAddr,
    /// TCP port to bind; `0` lets the operating system choose one.
    pub port: u16,
    /// Instance id reported in responses (`TUCANO_INSTANCE_ID`); `null` in JSON when unset.
    pub instance: Option<String>,
    /// Service name reported in responses (`TUCANO_SERVICE`); `null` in JSON when unset.
    pub service: Option<String>,
    /// Latency added to every request but `/healthz` (`TUCANO_DEMO_DELAY_MS`).
    pub delay: Duration,
    /// Requests at once that count as full load (`TUCANO_DEMO_CAPACITY`, at least 1).
    pub capacity: u32,
}

impl DemoConfig {
    /// A configuration listening on `0.0.0.0:port` with no instance id and no service name.
    pub fn new(port: u16) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
            instance: None,
            service: None,
            delay: Duration::ZERO,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// Replaces the IP address to bind.
    pub fn with_bind(mut self, bind: IpAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets the instance id reported in responses.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the service name reported in responses.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The socket address to bind: `bind:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Reads the configuration from the process environment.
    ///
    /// `PORT` is required (a decimal `u16`); `TUCANO_INSTANCE_ID`, `TUCANO_SERVICE` and `TUCANO_DEMO_BIND` (an IPv4
    /// or IPv6 address) are optional. A variable set to the empty string counts as unset.
    pub fn from_env() -> Result<Self, DemoError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`DemoConfig::from_env`], but reads each variable through `lookup` (handy in tests and when embedding).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, DemoError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let port_text = get(ENV_PORT).ok_or(DemoError::MissingPort)?;
        let port = port_text
            .trim()
            .parse::<u16>()
            .map_err(|_| DemoError::InvalidPort { value: port_text })?;
        let mut config = Self::new(port);
        if let Some(bind_text) = get(ENV_BIND) {
            config.bind = bind_text
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| DemoError::InvalidBind { value: bind_text })?;
        }
        config.instance = get(ENV_INSTANCE_ID);
        config.service = get(ENV_SERVICE);
        if let Some(delay) = get(ENV_DELAY_MS) {
            let ms = delay
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= super::MAX_WORK_MS)
                .ok_or(DemoError::InvalidSetting {
                    name: ENV_DELAY_MS,
                    value: delay,
                })?;
            config.delay = Duration::from_millis(ms);
        }
        if let Some(capacity) = get(ENV_CAPACITY) {
            config.capacity = capacity
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|c| *c >= 1)
                .ok_or(DemoError::InvalidSetting {
                    name: ENV_CAPACITY,
                    value: capacity,
                })?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn port_is_required() {
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[])),
            Err(DemoError::MissingPort)
        ));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "")])),
            Err(DemoError::MissingPort)
        ));
    }

    #[test]
    fn bad_port_and_bind_are_rejected() {
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "70000")])),
            Err(DemoError::InvalidPort { .. })
        ));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "80"), ("TUCANO_DEMO_BIND", "nope")])),
            Err(DemoError::InvalidBind { .. })
        ));
    }

    #[test]
    fn reads_every_variable() {
        let config = DemoConfig::from_lookup(lookup(&[
            ("PORT", "8080"),
            ("TUCANO_INSTANCE_ID", "i-1"),
            ("TUCANO_SERVICE", "hello"),
            ("TUCANO_DEMO_BIND", "127.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(config.addr(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.instance.as_deref(), Some("i-1"));
        assert_eq!(config.service.as_deref(), Some("hello"));
        let default = DemoConfig::from_lookup(lookup(&[("PORT", "1")])).unwrap();
        assert_eq!(default.addr(), "0.0.0.0:1".parse().unwrap());
        assert_eq!(default.instance, None);
        assert_eq!(default.delay, Duration::ZERO);
        assert_eq!(default.capacity, DEFAULT_CAPACITY);
        let slow = DemoConfig::from_lookup(lookup(&[
            ("PORT", "1"),
            ("TUCANO_DEMO_DELAY_MS", "250"),
            ("TUCANO_DEMO_CAPACITY", "8"),
        ]))
        .unwrap();
        assert_eq!(slow.delay, Duration::from_millis(250));
        assert_eq!(slow.capacity, 8);
        for bad in [
            ("TUCANO_DEMO_DELAY_MS", "soon"),
            ("TUCANO_DEMO_CAPACITY", "0"),
        ] {
            assert!(matches!(
                DemoConfig::from_lookup(lookup(&[("PORT", "1"), bad])),
                Err(DemoError::InvalidSetting { .. })
            ));
        }
    }
}
