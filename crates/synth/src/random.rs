//! Seeded randomness: one ChaCha stream per household, plus the small sampling helpers the
//! generator uses everywhere.
//!
//! Only these helpers touch the random number generator directly, which keeps the order of
//! draws (and so the byte-identical output for a given seed) easy to reason about: there is
//! no hash-map iteration or other hidden source of ordering anywhere in the crate.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// The generator used throughout the crate.
pub(crate) type SynthRng = ChaCha8Rng;

/// An independent stream of the seeded generator: stream 0 is the directory, stream n is
/// household n.
pub(crate) fn stream(seed: u64, stream: u64) -> SynthRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A version-4 UUID whose random bits come from the seeded generator, so ids are stable
/// across runs (unlike `Uuid::new_v4`, which reads the operating system's entropy).
pub(crate) fn uuid(rng: &mut SynthRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// True with probability `p` (clamped to 0..=1).
pub(crate) fn chance(rng: &mut SynthRng, p: f64) -> bool {
    rng.random_bool(p.clamp(0.0, 1.0))
}

/// A uniformly chosen element of a non-empty slice.
pub(crate) fn pick<'a, T>(rng: &mut SynthRng, items: &'a [T]) -> &'a T {
    items.choose(rng).expect("pick from an empty list")
}

/// An element chosen with the given relative weights.
pub(crate) fn weighted<T: Copy>(rng: &mut SynthRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in items {
        if ticket < *weight {
            return *item;
        }
        ticket -= weight;
    }
    unreachable!("ticket is below the total weight")
}

/// A whole number in `low..=high`.
pub(crate) fn between(rng: &mut SynthRng, low: i64, high: i64) -> i64 {
    rng.random_range(low..=high)
}

/// A real number in `low..high`.
pub(crate) fn uniform(rng: &mut SynthRng, low: f64, high: f64) -> f64 {
    rng.random_range(low..high)
}

/// A normally distributed number (Box–Muller), for physiological values that cluster
/// around a mean rather than spreading evenly across a range.
pub(crate) fn normal(rng: &mut SynthRng, mean: f64, standard_deviation: f64) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    mean + standard_deviation * z
}

/// How many of `trials` independent events with probability `p` happened.
pub(crate) fn count(rng: &mut SynthRng, trials: u32, p: f64) -> u32 {
    (0..trials).filter(|_| chance(rng, p)).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_the_same_seed_are_independent_and_repeatable() {
        let first: Vec<u32> = (0..4).map(|_| stream(7, 1).random()).collect();
        assert!(first.windows(2).all(|pair| pair[0] == pair[1]));
        let one: u64 = stream(7, 1).random();
        let two: u64 = stream(7, 2).random();
        assert_ne!(one, two);
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid(&mut stream(1, 0));
        assert_eq!(id.get_version_num(), 4);
    }
}
