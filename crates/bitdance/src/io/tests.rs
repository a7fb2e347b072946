//! Unit tests of the weight I/O: round trips, half-precision files, broken bytes, checks.

use std::collections::BTreeMap;

use super::*;
use crate::Error;

/// Raw safetensors bytes from a header JSON string and a data section.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn sample() -> Vec<u8> {
    let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
    let b = [3.25f32, -1.0, 7.0];
    save_safetensors(
        &[("model.b", &[3], &b), ("model.a.weight", &[3, 4], &a)],
        None,
    )
    .unwrap()
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn round_trip_keeps_names_shapes_values_and_metadata() {
    let a: Vec<f32> = (0..35).map(|i| (i as f32).sin()).collect();
    let s = [0.125f32];
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("note".to_string(), "quote \" and \\ kept".to_string());
    let bytes = save_safetensors(&[("z", &[], &s), ("a.w", &[5, 7], &a)], Some(&meta)).unwrap();
    let f = WeightFile::parse(&bytes).unwrap();
    assert_eq!(f.names(), vec!["a.w".to_string(), "z".to_string()]);
    assert_eq!(f.shape("a.w").unwrap(), &[5, 7]);
    assert_eq!(f.shape("z").unwrap(), &[] as &[usize]);
    assert_eq!(f.dtype("a.w").unwrap(), "F32");
    assert_eq!(f.to_f32("a.w").unwrap(), a);
    assert_eq!(f.to_f32("z").unwrap(), s);
    assert_eq!(f.metadata(), meta);
    assert_eq!(f.rows_f32("a.w", 2..4).unwrap(), &a[14..28]);
    // The reference parser agrees, and the data section starts 8-byte aligned.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("a.w").unwrap().shape(), &[5, 7]);
    assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()) % 8, 0);
}

#[test]
fn save_is_deterministic_whatever_the_input_order() {
    let x = [1.0f32, 2.0];
    let y = [3.0f32];
    let one = save_safetensors(&[("x", &[2], &x), ("y", &[1], &y)], None).unwrap();
    let two = save_safetensors(&[("y", &[1], &y), ("x", &[2], &x)], None).unwrap();
    assert_eq!(one, two);
    let empty = save_safetensors(&[], Some(&BTreeMap::new())).unwrap();
    assert!(WeightFile::parse(&empty).unwrap().names().is_empty());
}

#[test]
fn save_rejects_bad_lengths_and_duplicate_names() {
    let x = [1.0f32, 2.0];
    let err = save_safetensors(&[("x", &[3], &x)], None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DataLength {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("'x'"));
    let err = save_safetensors(&[("x", &[2], &x), ("x", &[2], &x)], None).unwrap_err();
    assert!(message(err).contains("'x'"));
}

#[test]
fn f16_and_bf16_tensors_convert_to_f32() {
    // f16: 1.0, -2.0, 65504, 2^-24 ; bf16: 1.0, -3.0 ; little-endian.
    let f16: [u16; 4] = [0x3c00, 0xc000, 0x7bff, 0x0001];
    let bf16: [u16; 2] = [0x3f80, 0xc040];
    let mut data: Vec<u8> = f16.iter().flat_map(|v| v.to_le_bytes()).collect();
    data.extend(bf16.iter().flat_map(|v| v.to_le_bytes()));
    let header = r#"{"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#;
    let bytes = raw(header, &data);
    let f = WeightFile::parse(&bytes).unwrap();
    assert_eq!(f.dtype("h").unwrap(), "F16");
    assert_eq!(
        f.to_f32("h").unwrap(),
        vec![1.0, -2.0, 65504.0, f32::from_bits(0x3380_0000)]
    );
    assert_eq!(
        f.rows_f32("h", 1..2).unwrap(),
        vec![65504.0, 5.960_464_5e-8]
    );
    assert_eq!(f.to_f32("b").unwrap(), vec![1.0, -3.0]);
}

#[test]
fn unsupported_dtypes_are_named() {
    let header = r#"{"steps":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#;
    let bytes = raw(header, &[0; 8]);
    let f = WeightFile::parse_named("ckpt.safetensors", &bytes).unwrap();
    let msg = message(f.to_f32("steps").unwrap_err());
    assert!(
        msg.contains("ckpt.safetensors") && msg.contains("'steps'") && msg.contains("I64"),
        "{msg}"
    );
    let header = r#"{"x":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    let msg = message(WeightFile::parse(&raw(header, &[0; 16])).unwrap_err());
    assert!(msg.contains("F128") && msg.contains("dtype"), "{msg}");
}

#[test]
fn truncated_bytes_fail_cleanly_at_every_length() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let err = WeightFile::parse_named("w.safetensors", &bytes[..len]).unwrap_err();
        let msg = message(err);
        assert!(msg.starts_with("w.safetensors: "), "{len}: {msg}");
        assert!(
            msg.contains("truncated") || msg.contains("corrupted header"),
            "{len}: {msg}"
        );
    }
    let msg = message(WeightFile::parse(&bytes[..bytes.len() - 3]).unwrap_err());
    assert!(
        msg.contains("truncated") && msg.contains("60 bytes"),
        "{msg}"
    );
}

#[test]
fn corrupted_headers_and_data_lengths_are_reported() {
    let bytes = sample();
    // Garbage in the JSON.
    let mut bad = bytes.clone();
    bad[8] = b'#';
    let msg = message(WeightFile::parse(&bad).unwrap_err());
    assert!(msg.contains("corrupted header"), "{msg}");
    // A header length pointing far past the end.
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let msg = message(WeightFile::parse(&bad).unwrap_err());
    assert!(msg.contains("corrupted header"), "{msg}");
    // Extra bytes after the data.
    let mut bad = bytes.clone();
    bad.extend_from_slice(&[0; 4]);
    let msg = message(WeightFile::parse(&bad).unwrap_err());
    assert!(
        msg.contains("data length mismatch") && msg.contains("64 bytes"),
        "{msg}"
    );
    // Offsets that disagree with the shape.
    let header = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#;
    let msg = message(WeightFile::parse(&raw(header, &[0; 20])).unwrap_err());
    assert!(
        msg.contains("data length mismatch") && msg.contains("'w'") && msg.contains("[2, 3]"),
        "{msg}"
    );
    // Not UTF-8.
    let msg = message(WeightFile::parse(&raw("\u{0}\u{ff}", &[])).unwrap_err());
    assert!(msg.contains("corrupted header"), "{msg}");
}

#[test]
fn lookups_of_absent_tensors_and_rows_fail_with_names() {
    let bytes = sample();
    let f = WeightFile::parse_named("m.safetensors", &bytes).unwrap();
    let msg = message(f.to_f32("nope").unwrap_err());
    assert!(
        msg.contains("m.safetensors") && msg.contains("'nope'"),
        "{msg}"
    );
    let err = f.rows_f32("model.a.weight", 2..4).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(!f.contains("nope") && f.contains("model.b"));
}

#[test]
fn check_expected_lists_every_problem_at_once() {
    let bytes = sample();
    let f = WeightFile::parse_named("m.safetensors", &bytes).unwrap();
    let ok = vec![
        ("model.a.weight".to_string(), vec![3, 4]),
        ("model.b".to_string(), vec![3]),
    ];
    check_expected(&f, &ok, &[]).unwrap();
    let wrong = vec![
        ("model.a.weight".to_string(), vec![4, 3]),
        ("model.c".to_string(), vec![2]),
        ("model.d".to_string(), vec![1, 1]),
    ];
    let msg = message(check_expected(&f, &wrong, &[]).unwrap_err());
    for needle in [
        "m.safetensors",
        "4 problem(s)",
        "2 missing, 1 unexpected, 1 misshaped",
        "missing: 'model.c' [2]",
        "missing: 'model.d' [1, 1]",
        "misshaped: 'model.a.weight': expected [4, 3], found [3, 4]",
        "unexpected: 'model.b' [3] F32",
    ] {
        assert!(msg.contains(needle), "no {needle:?} in:\n{msg}");
    }
    // Ignored prefixes drop unexpected tensors (and expected ones) from the check.
    let only_a = vec![("model.a.weight".to_string(), vec![3, 4])];
    check_expected(&f, &only_a, &["model.b"]).unwrap();
    let msg = message(check_expected(&f, &only_a, &[]).unwrap_err());
    assert!(msg.contains("unexpected: 'model.b'"), "{msg}");
}

#[test]
fn non_finite_values_are_refused_with_the_tensor_and_element() {
    let w = [1.0f32, 2.0, f32::NAN, 4.0];
    let bytes = save_safetensors(&[("norm.weight", &[2, 2], &w)], None).unwrap();
    let f = WeightFile::parse_named("model.safetensors", &bytes).unwrap();
    let msg = message(f.to_f32("norm.weight").unwrap_err());
    for needle in ["model.safetensors", "'norm.weight'", "NaN", "element 2"] {
        assert!(msg.contains(needle), "no {needle:?} in {msg}");
    }
    // The first row is whole and finite; the second holds the NaN.
    assert_eq!(f.rows_f32("norm.weight", 0..1).unwrap(), vec![1.0, 2.0]);
    assert!(f.rows_f32("norm.weight", 1..2).is_err());
    // F16 infinity (0x7C00) in a half-precision file.
    let h = raw(
        r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
        &[0x00, 0x3C, 0x00, 0x7C],
    );
    let f = WeightFile::parse_named("half.safetensors", &h).unwrap();
    let msg = message(f.to_f32("h").unwrap_err());
    assert!(
        msg.contains("'h'") && msg.contains("inf") && msg.contains("element 1"),
        "{msg}"
    );
}

#[test]
fn empty_tensors_whose_other_sizes_overflow_are_refused_at_parse() {
    // Found by the fuzzer: safetensors accepts these (0 elements, 0 bytes), but the row size
    // [2^40, 2^40] (and the row bytes 2^62 x 4) overflowed in rows_f32.
    for shape in ["[0,1099511627776,1099511627776]", "[0,4611686018427387904]"] {
        let header = format!(r#"{{"z":{{"dtype":"F32","shape":{shape},"data_offsets":[0,0]}}}}"#);
        let msg =
            message(WeightFile::parse_named("z.safetensors", &raw(&header, &[])).unwrap_err());
        assert!(
            msg.starts_with("z.safetensors: ") && msg.contains("'z'") && msg.contains("overflows"),
            "{msg}"
        );
    }
    // An empty tensor with sizes that fit still parses and reads as nothing.
    let header = r#"{"e":{"dtype":"BF16","shape":[0,3],"data_offsets":[0,0]}}"#;
    let bytes = raw(header, &[]);
    let f = WeightFile::parse(&bytes).unwrap();
    assert_eq!(f.to_f32("e").unwrap(), Vec::<f32>::new());
    assert_eq!(f.rows_f32("e", 0..0).unwrap(), Vec::<f32>::new());
}
