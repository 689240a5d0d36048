//! The CPU-bound workload of the Tucano paper: factorise a number by trial division and hash the factors.

use sha2::{Digest, Sha256};

/// The prime factors of `n` in ascending order, with multiplicity, by trial division.
///
/// `factorize(360) == [2, 2, 2, 3, 3, 5]`. `0` and `1` have no prime factors and give an empty list. The cost grows
/// with the square root of the largest prime factor: a prime close to `u64::MAX` takes about 2^31 divisions.
pub fn factorize(mut n: u64) -> Vec<u64> {
    let mut factors = Vec::new();
    if n < 2 {
        return factors;
    }
    while n.is_multiple_of(2) {
        factors.push(2);
        n /= 2;
    }
    let mut divisor: u64 = 3;
    // `divisor <= n / divisor` is `divisor * divisor <= n` without overflow.
    while divisor <= n / divisor {
        while n.is_multiple_of(divisor) {
            factors.push(divisor);
            n /= divisor;
        }
        divisor += 2;
    }
    if n > 1 {
        factors.push(n);
    }
    factors
}

/// SHA-256 of the factors, as lowercase hex.
///
/// Exactly: each factor is written in decimal (ASCII digits, no sign, no leading zeros), the strings are joined with a
/// single `,` and no spaces, and the UTF-8 bytes of the result are hashed. For `[2, 2, 2, 3, 3, 5]` the hashed text is
/// `2,2,2,3,3,5`; for an empty list it is the empty string
/// (`e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`).
pub fn factors_sha256(factors: &[u64]) -> String {
    let text = factors
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorizes_small_numbers() {
        assert_eq!(factorize(0), Vec::<u64>::new());
        assert_eq!(factorize(1), Vec::<u64>::new());
        assert_eq!(factorize(2), vec![2]);
        assert_eq!(factorize(360), vec![2, 2, 2, 3, 3, 5]);
        assert_eq!(factorize(97), vec![97]);
        assert_eq!(factorize(1 << 63), vec![2; 63]);
    }

    #[test]
    fn factorizes_large_numbers_without_overflow() {
        // 65521 is the largest prime below 2^16.
        assert_eq!(factorize(65_521 * 65_521), vec![65_521, 65_521]);
        assert_eq!(factorize(65_521 * 4), vec![2, 2, 65_521]);
        assert_eq!(
            factorize(u64::MAX),
            vec![3, 5, 17, 257, 641, 65_537, 6_700_417]
        );
    }

    #[test]
    fn hashes_the_comma_joined_decimal_factors() {
        assert_eq!(
            factors_sha256(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let expected: String = Sha256::digest(b"2,2,2,3,3,5")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(factors_sha256(&[2, 2, 2, 3, 3, 5]), expected);
        assert_eq!(expected.len(), 64);
    }
}
