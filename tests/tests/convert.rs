//! Reading official PyTorch checkpoints without executing them: values of f32/f16/bf16,
//! transposed and offset views match what PyTorch saved (fixtures from
//! scripts/reference/make_pt_fixtures.py); hostile or broken files are refused clearly.

use bitdance::io::{read_state_dict, Select};

const CHECKPOINT: &[u8] = include_bytes!("../fixtures/pt/checkpoint.pt");
const BARE: &[u8] = include_bytes!("../fixtures/pt/bare.pt");
const MALICIOUS: &[u8] = include_bytes!("../fixtures/pt/malicious.pt");
const EXPECTED: &str = include_str!("../fixtures/pt/expected.json");

fn expected(name: &str) -> (Vec<usize>, Vec<f32>) {
    let all: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    let t = &all[name];
    let shape = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let data = t["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    (shape, data)
}

#[test]
fn model_and_ema_tensors_match_pytorch() {
    for (select, prefix, key) in [(Select::Model, "", "model"), (Select::Ema, "ema.", "ema")] {
        let sd = read_state_dict("checkpoint.pt", CHECKPOINT, select).unwrap();
        assert_eq!(sd.key, key);
        assert_eq!(sd.tensors.len(), 6);
        for (name, t) in &sd.tensors {
            let (shape, data) = expected(&format!("{prefix}{name}"));
            assert_eq!(t.shape, shape, "{name}");
            assert_eq!(t.data, data, "{name}: values differ");
        }
        assert_eq!(sd.tensors["layers.0.half"].dtype, "HalfStorage");
        assert_eq!(sd.tensors["layers.0.bf"].dtype, "BFloat16Storage");
        assert!(sd.skipped.contains(&"args".to_string()), "{:?}", sd.skipped);
    }
}

#[test]
fn a_dict_referenced_twice_reads_filled_both_times() {
    let bytes = include_bytes!("../fixtures/pt/shared.pt");
    for select in [Select::Model, Select::Ema] {
        let sd = read_state_dict("shared.pt", bytes, select).unwrap();
        assert_eq!(sd.tensors.len(), 6, "{select:?}");
        let (shape, data) = expected("layers.0.view");
        assert_eq!(sd.tensors["layers.0.view"].shape, shape);
        assert_eq!(sd.tensors["layers.0.view"].data, data);
    }
}

#[test]
fn bare_state_dicts_lose_the_ddp_prefix() {
    let sd = read_state_dict("bare.pt", BARE, Select::Model).unwrap();
    assert_eq!(sd.key, "");
    let (shape, data) = expected("layers.0.t");
    assert_eq!(sd.tensors["layers.0.t"].shape, shape);
    assert_eq!(sd.tensors["layers.0.t"].data, data);
    let err = read_state_dict("bare.pt", BARE, Select::Ema)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no ema entry"), "{err}");
}

#[test]
fn hostile_and_broken_files_are_refused() {
    let err = read_state_dict("malicious.pt", MALICIOUS, Select::Model)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("refused") && err.contains("system"), "{err}");
    for cut in [CHECKPOINT.len() / 2, CHECKPOINT.len() - 30, 10] {
        let err = read_state_dict("cut.pt", &CHECKPOINT[..cut], Select::Model)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cut.pt"), "{err}");
    }
    // A pre-1.6 torch.save stream: pickle protocol 2 and the legacy magic number.
    let legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
    let err = read_state_dict("old.pt", legacy, Select::Model)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("old.pt") && err.contains("legacy torch.save"),
        "{err}"
    );
    let err = read_state_dict("x.pt", b"not a zip at all", Select::Model)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not a readable torch.save zip archive"),
        "{err}"
    );
}

/// A copy of `archive` with the first data byte of member `suffix` flipped.
fn damaged(archive: &[u8], suffix: &[u8]) -> Vec<u8> {
    let u16_at = |i: usize| u16::from_le_bytes([archive[i], archive[i + 1]]) as usize;
    let header = (0..archive.len() - 30)
        .find(|&i| {
            archive[i..].starts_with(b"PK\x03\x04")
                && archive[i + 30..i + 30 + u16_at(i + 26)].ends_with(suffix)
        })
        .expect("member present");
    let data = header + 30 + u16_at(header + 26) + u16_at(header + 28);
    let mut copy = archive.to_vec();
    copy[data] ^= 0x40;
    copy
}

#[test]
fn a_damaged_member_is_named() {
    for member in [&b"/data/0"[..], b"data.pkl"] {
        let bytes = damaged(CHECKPOINT, member);
        let err = read_state_dict("bad.pt", &bytes, Select::Model)
            .err()
            .expect("a flipped byte is noticed")
            .to_string();
        assert!(err.contains("bad.pt") && err.contains("damaged"), "{err}");
        assert!(err.contains(std::str::from_utf8(member).unwrap()), "{err}");
    }
}
