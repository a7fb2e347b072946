//! Every kernel family against its CPU f64 reference on the present adapter: the families the
//! core registers (`ops/mod.rs`), each on its own thread, one failure table per family.

use bitdance::conformance;
use bitdance_tests::assert_family;

#[test]
fn every_registered_kernel_family_matches_its_reference() {
    let names: Vec<&str> = conformance::families().iter().map(|f| f.name).collect();
    assert!(names.len() >= 10, "families: {names:?}");
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = names
            .iter()
            .map(|&name| {
                let run = move || assert_family(name);
                (name, scope.spawn(run))
            })
            .collect();
        runs.into_iter()
            .filter_map(|(name, run)| run.join().is_err().then(|| name.to_string()))
            .collect()
    });
    assert!(failures.is_empty(), "families failing: {failures:?}");
}
