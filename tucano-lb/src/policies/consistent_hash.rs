//! Consistent hashing (Maglev): requests with the same key go to the same endpoint, and a
//! change of endpoints moves few keys.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{COOKIE, HeaderName};
use tucano_core::HashKey;

use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;
use crate::rng;

/// The smallest lookup table (a prime).
pub(crate) const MIN_TABLE: u64 = 65_537;
/// Slots per endpoint the table aims for (it is the smallest prime at least this many times
/// the number of endpoints, and at least [`MIN_TABLE`]).
pub(crate) const SLOTS_PER_ENDPOINT: u64 = 100;
/// The table never grows past the first prime from this size (64 MiB of slots): sets larger
/// than 167 772 endpoints get fewer than 100 slots each.
pub(crate) const MAX_TABLE: u64 = 1 << 24;

/// Sends requests with the same key to the same endpoint, using Google's Maglev hashing.
///
/// The key is what the service's [`HashKey`] names: the client's address, a request header's
/// value, or a cookie's value (parsed out of the `Cookie` headers in place). A request without
/// that header or cookie (or with an empty value) is hashed on its client address; one without
/// an address either goes to a random endpoint. Keys are hashed with 64-bit FNV-1a followed by
/// a SplitMix64 finaliser, without allocating.
///
/// [`rebuild`](Balancer::rebuild) fills the Maglev lookup table: its size `M` is the smallest
/// prime ≥ max(65 537, 100 × n) (capped near 2²⁴); the endpoints are ordered by instance id,
/// so that republishing the same endpoints in another order changes nothing; each endpoint
/// derives from its id an offset and a skip (1..M) and claims, in turn (as many turns per round
/// as its weight, weights divided by their common divisor), the next free slot of its
/// permutation `offset, offset + skip, … (mod M)`. A pick is a hash, a multiply-shift to a
/// slot and one table read, the same for any number of endpoints. Each endpoint owns about
/// `M / n` slots (within a few percent), and adding or removing one of `n` endpoints moves
/// about `1/n` of the keys, plus a small fraction Maglev trades for its even spread.
///
/// Slow start does not apply (a key must keep its endpoint), and picking from a set the table
/// was not built for (which the routing table never does) hashes onto that set directly.
///
/// ```
/// use std::net::IpAddr;
/// use http::HeaderMap;
/// use tucano_core::BalancingSpec;
/// use tucano_core::HashKey;
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
///
/// let spec = BalancingSpec {
///     hash_key: HashKey::Header("x-user".into()),
///     ..BalancingSpec::named("consistent_hash")
/// };
/// let policy = PolicyRegistry::builtin().create(&spec).unwrap();
/// let set = EndpointSet::empty();
/// let policy = policy.rebuild(&set).unwrap_or(policy);
/// let headers = HeaderMap::new();
/// let request = PickContext::new(IpAddr::from([10, 0, 0, 1]), &headers, 0);
/// assert!(policy.pick(&set, &request).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ConsistentHash {
    key: Key,
    /// Slot → index in the set the table was built for.
    table: Arc<[u32]>,
    /// The length of that set.
    built_for: usize,
}

/// What the key is taken from, prepared for the request path.
#[derive(Debug, Clone)]
enum Key {
    ClientIp,
    Header(HeaderName),
    Cookie(Box<str>),
}

impl ConsistentHash {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "consistent_hash";

    /// A policy hashing on `key`, with no table yet: [`rebuild`](Balancer::rebuild) makes
    /// one. A header name that is not a valid one falls back to the client address.
    pub fn new(key: &HashKey) -> Self {
        let key = match key {
            HashKey::ClientIp => Key::ClientIp,
            HashKey::Header(name) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => Key::Header(name),
                Err(_) => {
                    tracing::warn!(header = %name, "consistent_hash: invalid header name; hashing on the client address");
                    Key::ClientIp
                }
            },
            HashKey::Cookie(name) => Key::Cookie(name.as_str().into()),
        };
        Self {
            key,
            table: Arc::from(Vec::new()),
            built_for: 0,
        }
    }

    /// The hash of the request's key, if it has one (or a client address).
    #[inline]
    fn key_hash(&self, request: &PickContext<'_>) -> Option<u64> {
        let named = match &self.key {
            Key::ClientIp => None,
            Key::Header(name) => request
                .headers()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_bytes())
                .filter(|value| !value.is_empty()),
            Key::Cookie(name) => request.headers().and_then(|headers| {
                headers
                    .get_all(COOKIE)
                    .iter()
                    .find_map(|value| cookie(value.as_bytes(), name.as_bytes()))
            }),
        };
        match named {
            Some(bytes) => Some(hash(bytes)),
            None => request.client().map(hash_ip),
        }
    }
}

impl Balancer for ConsistentHash {
    fn pick<'a>(
        &self,
        endpoints: &'a EndpointSet,
        request: &PickContext<'_>,
    ) -> Option<&'a Backend> {
        let len = endpoints.len();
        if len == 0 {
            return None;
        }
        let Some(hash) = self.key_hash(request) else {
            return endpoints.get(rng::below(len));
        };
        if len == self.built_for && !self.table.is_empty() {
            let slot = reduce(hash, self.table.len());
            endpoints.get(*self.table.get(slot)? as usize)
        } else {
            endpoints.get(reduce(hash, len))
        }
    }

    fn rebuild(&self, endpoints: &EndpointSet) -> Option<Arc<dyn Balancer>> {
        Some(Arc::new(Self {
            key: self.key.clone(),
            table: maglev(endpoints).into(),
            built_for: endpoints.len(),
        }))
    }
}

/// `hash` mapped onto `0..len` by multiply-shift (no division).
#[inline]
fn reduce(hash: u64, len: usize) -> usize {
    ((u128::from(hash) * len as u128) >> 64) as usize
}

/// 64-bit FNV-1a of `bytes`, then SplitMix64's finaliser so that every bit of the hash
/// depends on every byte (FNV's low bits alone are weak).
#[inline]
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    finish(h)
}

#[inline]
fn finish(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The hash of a client address (an IPv4-mapped IPv6 address hashes as the IPv4 one).
#[inline]
fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash(&v4.octets()),
        IpAddr::V6(v6) => hash(&v6.octets()),
    }
}

/// The value of cookie `name` in one `Cookie` header value (`a=1; b=2`), without the double
/// quotes around it if it has them; `None` if it is absent or empty.
pub(crate) fn cookie<'v>(header: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair.get(..at)?, pair.get(at + 1..)?);
        if key.trim_ascii() != name {
            return None;
        }
        let value = value.trim_ascii();
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        };
        (!value.is_empty()).then_some(value)
    })
}

/// The size of the lookup table for `n` endpoints.
pub(crate) fn table_size(n: usize) -> u64 {
    let wanted = (n as u64)
        .saturating_mul(SLOTS_PER_ENDPOINT)
        .clamp(MIN_TABLE, MAX_TABLE);
    next_prime(wanted)
}

fn next_prime(from: u64) -> u64 {
    (from.max(2)..)
        .find(|&candidate| is_prime(candidate))
        .unwrap_or(from)
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The Maglev lookup table for `endpoints`: slot → index in `endpoints`. Empty for an empty
/// set (or one larger than a `u32` can index).
pub(crate) fn maglev(endpoints: &EndpointSet) -> Vec<u32> {
    let n = endpoints.len();
    if n == 0 || u32::try_from(n).is_err() {
        return Vec::new();
    }
    let m = table_size(n);
    let Ok(size) = usize::try_from(m) else {
        return Vec::new();
    };
    // Stable order: by instance id, whatever order the set was published in.
    let mut order: Vec<(&Backend, u32)> = endpoints.iter().zip(0u32..).collect();
    order.sort_by_key(|(backend, _)| *backend.instance());
    let divisor = order
        .iter()
        .fold(0u64, |g, (b, _)| gcd(g, u64::from(b.weight())))
        .max(1);
    struct Filler {
        index: u32,
        turns: u64,
        position: u64,
        skip: u64,
    }
    let mut fillers: Vec<Filler> = order
        .iter()
        .map(|(backend, index)| {
            let id = backend.instance().as_uuid().as_bytes();
            let offset = finish(hash(id)) % m;
            let skip = finish(hash(id) ^ 0x9E37_79B9_7F4A_7C15) % (m - 1) + 1;
            Filler {
                index: *index,
                turns: (u64::from(backend.weight()) / divisor).max(1),
                position: offset,
                skip,
            }
        })
        .collect();
    const EMPTY: u32 = u32::MAX;
    let mut table = vec![EMPTY; size];
    let mut filled: usize = 0;
    'rounds: loop {
        for filler in &mut fillers {
            for _ in 0..filler.turns {
                // Every permutation visits every slot (M is prime, 0 < skip < M), so a free
                // one is always found while the table is not full.
                loop {
                    let slot = filler.position as usize;
                    filler.position += filler.skip;
                    if filler.position >= m {
                        filler.position -= m;
                    }
                    match table.get_mut(slot) {
                        Some(entry) if *entry == EMPTY => {
                            *entry = filler.index;
                            break;
                        }
                        _ => {}
                    }
                }
                filled += 1;
                if filled == size {
                    break 'rounds;
                }
            }
        }
    }
    table
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use tucano_core::InstanceId;
    use tucano_core::transport::Endpoint;

    const KEYS: usize = 10_000;

    fn by_header() -> ConsistentHash {
        ConsistentHash::new(&HashKey::Header("x-user".into()))
    }

    fn headers(key: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-user",
            HeaderValue::from_str(&format!("user-{key}")).unwrap(),
        );
        headers
    }

    /// The instance each of `KEYS` keys maps to.
    fn mapping(endpoints: &[Endpoint]) -> Vec<InstanceId> {
        let set = EndpointSet::new(endpoints);
        let policy = built(Arc::new(by_header()), &set);
        let client = IpAddr::from([10, 0, 0, 1]);
        (0..KEYS)
            .map(|key| {
                let headers = headers(key);
                *policy
                    .pick(&set, &PickContext::new(client, &headers, 0))
                    .unwrap()
                    .instance()
            })
            .collect()
    }

    fn moved(before: &[InstanceId], after: &[InstanceId]) -> usize {
        before.iter().zip(after).filter(|(a, b)| a != b).count()
    }

    #[test]
    fn adding_an_endpoint_moves_few_keys() {
        for n in [10, 100] {
            let endpoints: Vec<Endpoint> = (0..n).map(|_| endpoint(1)).collect();
            let before = mapping(&endpoints);
            let mut more = endpoints.clone();
            // The new one published first: the order must not matter.
            more.insert(0, endpoint(1));
            let after = mapping(&more);
            let moved = moved(&before, &after) as f64 / KEYS as f64;
            assert!(moved <= 1.0 / n as f64 + 0.05, "n={n}: moved {moved:.4}");
            // The keys that moved all went to the new endpoint.
            let to_new = after.iter().filter(|i| **i == more[0].instance).count() as f64;
            assert!(to_new / KEYS as f64 <= moved + f64::EPSILON);
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        for n in [10, 100] {
            let endpoints: Vec<Endpoint> = (0..n).map(|_| endpoint(1)).collect();
            let before = mapping(&endpoints);
            let gone = endpoints[n / 2].instance;
            let fewer: Vec<Endpoint> = endpoints
                .iter()
                .filter(|e| e.instance != gone)
                .cloned()
                .collect();
            let after = mapping(&fewer);
            let others_moved = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b != gone && a != b)
                .count() as f64;
            assert!(
                others_moved / (KEYS as f64) <= 0.05,
                "n={n}: {others_moved} keys of other endpoints moved"
            );
        }
    }

    #[test]
    fn republishing_in_another_order_moves_nothing() {
        let endpoints: Vec<Endpoint> = (0..20).map(|_| endpoint(1)).collect();
        let before = mapping(&endpoints);
        let mut reversed = endpoints.clone();
        reversed.reverse();
        assert_eq!(moved(&before, &mapping(&reversed)), 0);
    }

    #[test]
    fn same_key_same_endpoint_and_keys_spread_evenly() {
        let endpoints: Vec<Endpoint> = (0..10).map(|_| endpoint(1)).collect();
        let first = mapping(&endpoints);
        let set = EndpointSet::new(&endpoints);
        let policy = built(Arc::new(by_header()), &set);
        let client = IpAddr::from([10, 0, 0, 1]);
        for (key, instance) in first.iter().enumerate().take(1000) {
            let headers = headers(key);
            for _ in 0..3 {
                let request = PickContext::new(client, &headers, 0);
                assert_eq!(policy.pick(&set, &request).unwrap().instance(), instance);
            }
        }
        for endpoint in &endpoints {
            let got = first.iter().filter(|i| **i == endpoint.instance).count();
            assert!((800..1200).contains(&got), "{got}");
        }
    }

    #[test]
    fn table_shares_are_even_and_follow_weights() {
        let set = weighted(&[1, 1, 1, 1, 3]);
        let table = maglev(&set);
        assert_eq!(table.len() as u64, table_size(5));
        let count = |i| table.iter().filter(|&&t| t == i).count() as f64;
        let unit = table.len() as f64 / 7.0;
        for i in 0..4 {
            assert!((count(i) / unit - 1.0).abs() < 0.02, "{}", count(i));
        }
        assert!((count(4) / unit - 3.0).abs() < 0.06, "{}", count(4));
    }

    #[test]
    fn without_the_key_it_hashes_the_client_address_then_picks_at_random() {
        crate::rng::seed(31);
        let set = set(10);
        let policy = built(Arc::new(by_header()), &set);
        let empty = HeaderMap::new();
        let client = IpAddr::from([192, 0, 2, 7]);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let first = *policy
            .pick(&set, &PickContext::new(client, &empty, 0))
            .unwrap()
            .instance();
        for _ in 0..20 {
            let again = policy.pick(&set, &PickContext::new(mapped, &empty, 0));
            assert_eq!(again.unwrap().instance(), &first);
        }
        let random = hits(policy.as_ref(), &set, 1000);
        assert!(random.iter().all(|&h| h > 50), "{random:?}");
    }

    #[test]
    fn cookies_are_found_in_place() {
        assert_eq!(
            cookie(b"a=1; session=abc; b=2", b"session"),
            Some(&b"abc"[..])
        );
        assert_eq!(cookie(b"session=\"q v\"", b"session"), Some(&b"q v"[..]));
        assert_eq!(
            cookie(b"xsession=1;session =2", b"session"),
            Some(&b"2"[..])
        );
        assert_eq!(cookie(b"xsession=1", b"session"), None);
        assert_eq!(cookie(b"session=", b"session"), None);
        assert_eq!(cookie(b"session", b"session"), None);
        assert_eq!(cookie(b"", b"session"), None);
        assert_eq!(cookie(b"Session=1", b"session"), None);

        let set = set(10);
        let policy = built(
            Arc::new(ConsistentHash::new(&HashKey::Cookie("session".into()))),
            &set,
        );
        let pick = |cookies: &[&str], client: [u8; 4]| {
            let mut headers = HeaderMap::new();
            for c in cookies {
                headers.append(COOKIE, HeaderValue::from_str(c).unwrap());
            }
            let request = PickContext::new(IpAddr::from(client), &headers, 0);
            *policy.pick(&set, &request).unwrap().instance()
        };
        // The same session from different clients, in either of two Cookie headers.
        let session = pick(&["theme=dark; session=s-42"], [10, 0, 0, 1]);
        assert_eq!(pick(&["a=b", "session=s-42"], [10, 0, 0, 2]), session);
        let sessions: std::collections::HashSet<_> = (0..50)
            .map(|k| pick(&[&format!("session=s-{k}")], [10, 0, 0, 1]))
            .collect();
        assert!(sessions.len() > 5);
    }

    #[test]
    fn table_sizes_are_primes_with_room_per_endpoint() {
        assert_eq!(table_size(1), 65_537);
        assert_eq!(table_size(655), 65_537);
        let size = table_size(1000);
        assert!(size >= 100_000 && is_prime(size) && size < 100_100);
        assert!(table_size(10_000_000) >= MAX_TABLE && table_size(10_000_000) < MAX_TABLE + 1000);
    }

    #[test]
    fn a_set_it_was_not_built_for_is_hashed_directly() {
        let policy = built(Arc::new(by_header()), &set(3));
        let other = set(5);
        let headers = headers(1);
        let request = PickContext::new(IpAddr::from([10, 0, 0, 1]), &headers, 0);
        let first = *policy.pick(&other, &request).unwrap().instance();
        assert_eq!(policy.pick(&other, &request).unwrap().instance(), &first);
    }
}
