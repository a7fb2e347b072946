//! `bitdance quality` end to end on a few bundled digits: the classifier's held-out accuracy,
//! the tokenizer's PSNR and per-class sample accuracy are printed; data folders that are no
//! class of the model are refused by name.

use std::path::{Path, PathBuf};

mod common;
use common::run_bitdance as bitdance;

/// A dataset root with `per_class` images of each bundled digit in train/ and test/.
fn few_digits(root: &Path, per_class: usize) {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/datasets/mnist");
    for split in ["train", "test"] {
        for class in std::fs::read_dir(mnist.join(split)).unwrap() {
            let class = class.unwrap().path();
            let to = root.join(split).join(class.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            let mut images: Vec<PathBuf> = std::fs::read_dir(&class)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            images.sort();
            for image in images.iter().take(per_class) {
                std::fs::copy(image, to.join(image.file_name().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn quality_reports_the_classifier_tokenizer_and_samples_and_refuses_unknown_classes() {
    let root = std::env::temp_dir().join(format!("bitdance-cli-quality-{}", std::process::id()));
    few_digits(&root, 4);
    let data = root.to_str().unwrap();
    let args = ["quality", "--data", data, "--no-flip", "--per-class", "2"];
    let quick = ["--steps", "2", "--classifier-steps", "20"];
    let (ok, text) = bitdance(&[&args[..], &quick[..]].concat());
    assert!(ok, "{text}");
    assert!(text.contains("on the 40 held-out images"), "{text}");
    assert!(
        text.contains("reconstruction PSNR") && text.contains("of the reconstructions"),
        "{text}"
    );
    for digit in 0..10 {
        let line = format!("{digit}-{digit} ");
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&line)),
            "{text}"
        );
    }
    let all = text
        .lines()
        .find(|l| l.trim_start().starts_with("all"))
        .unwrap();
    let percent: f64 = all
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!((0.0..=100.0).contains(&percent), "{all}");

    // A folder naming no class of the default model (its classes are the digits).
    let zebra = root.join("train").join("zebra");
    std::fs::create_dir_all(&zebra).unwrap();
    let one = std::fs::read_dir(root.join("train/3-3"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&one, zebra.join("z.png")).unwrap();
    let (ok, text) = bitdance(&[&args[..], &quick[..]].concat());
    assert!(
        !ok && text.contains("'zebra' is no class of the model"),
        "{text}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
