//! Checking a weight file against the names and shapes a model expects, all problems at once.

use std::collections::BTreeSet;

use super::WeightFile;
use crate::{Error, Result};

/// Checks `file` against `expected` (name, shape) pairs; names under `ignore_prefixes` are
/// skipped on both sides. One `Error::Invalid` lists every missing, unexpected and misshaped
/// tensor (expected vs found shape).
pub fn check_expected(
    file: &WeightFile<'_>,
    expected: &[(String, Vec<usize>)],
    ignore_prefixes: &[&str],
) -> Result<()> {
    let ignored = |name: &str| ignore_prefixes.iter().any(|p| name.starts_with(p));
    let mut missing = Vec::new();
    let mut misshaped = Vec::new();
    let mut wanted = BTreeSet::new();
    for (name, shape) in expected.iter().filter(|(n, _)| !ignored(n)) {
        if !wanted.insert(name.as_str()) {
            continue;
        }
        match file.shape(name) {
            Err(_) => missing.push(format!("  missing: '{name}' {shape:?}")),
            Ok(found) if found != shape.as_slice() => misshaped.push(format!(
                "  misshaped: '{name}': expected {shape:?}, found {found:?}"
            )),
            Ok(_) => {}
        }
    }
    let unexpected: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !ignored(n) && !wanted.contains(n.as_str()))
        .map(|n| {
            let shape = file.shape(&n).map(<[usize]>::to_vec).unwrap_or_default();
            let dtype = file.dtype(&n).unwrap_or_default();
            format!("  unexpected: '{n}' {shape:?} {dtype}")
        })
        .collect();
    let total = missing.len() + unexpected.len() + misshaped.len();
    if total == 0 {
        return Ok(());
    }
    let mut msg = format!(
        "{}: {total} problem(s) with the weights ({} missing, {} unexpected, {} misshaped):",
        file.label(),
        missing.len(),
        unexpected.len(),
        misshaped.len()
    );
    for line in missing.iter().chain(&misshaped).chain(&unexpected) {
        msg.push('\n');
        msg.push_str(line);
    }
    Err(Error::Invalid(msg))
}
