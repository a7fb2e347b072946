//! The fuzz targets, one file each: what a target parses, how it mutates its format beyond the
//! generic edits, its dictionary and its seeds. Adding a target is one file here defining
//! `pub const TARGET: Target` and its module name in the `registry!` line below.

use crate::rng::Rng;

/// What one step of an input did: `Ok` with what was accepted, or the error message.
pub type Outcome = Result<String, String>;

/// A format-aware mutation: (generator, parent input, pool) to a new input, or `None`.
pub type Mutator = fn(&mut Rng, &[u8], &[Vec<u8>]) -> Option<Vec<u8>>;

/// A parser under fuzzing.
pub struct Target {
    /// Name on the command line and in the corpus and finds folders.
    pub name: &'static str,
    /// What the target calls, in a few words.
    pub about: &'static str,
    /// Runs the parser (and every reader of what it returns) on one input. Broken invariants
    /// are asserted: a panic is a find.
    pub run: fn(&[u8]) -> Vec<Outcome>,
    /// A format-aware mutation of an input (`None` when it does not apply); the pool is given
    /// for splicing.
    pub mutate: Mutator,
    /// Tokens of the format, inserted and swapped by the generic mutator.
    pub dict: &'static [&'static [u8]],
    /// The seed corpus, built programmatically: (file name, bytes).
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
}

macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*
        /// Every target, in the order `--target all` runs them.
        pub const TARGETS: &[Target] = &[$($name::TARGET),*];
    };
}

registry!(safetensors, pt, image, config, recipe);

/// The element count of `shape`, or `None` when it overflows.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}
