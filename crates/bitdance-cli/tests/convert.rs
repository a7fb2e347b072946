//! `bitdance convert` on forged checkpoints (the fuzzer's seed corpus): an error naming the
//! file and the fault, the CLI's error exit code 2, never a panic (101) or an abort, and no
//! output file.

use std::path::PathBuf;
use std::process::Command;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/pt")
        .join(name)
}

#[test]
fn forged_checkpoints_are_refused_by_name_without_a_panic() {
    let out = std::env::temp_dir().join(format!("bitdance-convert-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for (file, says) in [
        // A tensor of size 2^62 over a 16-byte storage (was "capacity overflow", rc 101).
        ("size-2e62.pt", "more than 4294967296 elements"),
        // A stride-0 view of one float claiming 2^29 elements (2 GiB of f32).
        ("stride0.pt", "stride of 0"),
        // Thousands of names viewing one storage: more values than the file has bytes.
        ("many-views.pt", "one per byte of the file"),
        ("fixture-malicious.pt", "refused"),
        ("legacy.pt", "legacy torch.save"),
    ] {
        let target = out.join(format!("{file}.safetensors"));
        let output = Command::new(env!("CARGO_BIN_EXE_bitdance"))
            .arg("convert")
            .arg(corpus(file))
            .arg(&target)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {text}");
        assert!(text.contains(file) && text.contains(says), "{file}: {text}");
        assert!(!target.exists(), "{file}: an output was written");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
