//! safetensors weight files: `WeightFile::parse_named`, then every reader of a parsed file
//! (names, shapes, dtypes, metadata, `to_f32`, `rows_f32`), the model config and class names
//! its metadata holds (`stored_config`, `stored_class_names`, as the loaders read them) and the
//! recorded-noise reader.

use std::collections::BTreeMap;
use std::ops::Range;

use bitdance::io::{save_safetensors, save_safetensors_f16, WeightFile};
use bitdance::model::{
    stored_class_names, stored_config, Draw, GaussianSource, ModelConfig, RecordedNoise,
    CLASSES_KEY, CONFIG_KEY,
};
use serde_json::{json, Map, Value};

use super::{numel, Outcome, Target};
use crate::mutate::{self, MAX_INPUT};
use crate::rng::Rng;

/// The target.
pub const TARGET: Target = Target {
    name: "safetensors",
    about: "WeightFile::parse_named and its readers, stored_config, RecordedNoise",
    run,
    mutate: mutate_file,
    dict: &[
        b"\"dtype\"",
        b"\"shape\"",
        b"\"data_offsets\"",
        b"\"__metadata__\"",
        b"\"F32\"",
        b"\"F16\"",
        b"\"BF16\"",
        b"\"F64\"",
        b"\"I64\"",
        b"\"BOOL\"",
        b"\"F4\"",
        b"\"F8_E4M3\"",
        b"\"bitdance.config\"",
        b"[]",
        b"[0]",
        b"{}",
        b"null",
        b",",
        b"\\u0000",
        b"\\\"",
    ],
    seeds,
};

/// Dtypes the JSON mutator writes, with their sizes in bits.
const DTYPES: [(&str, usize); 12] = [
    ("F32", 32),
    ("F16", 16),
    ("BF16", 16),
    ("F64", 64),
    ("I64", 64),
    ("I32", 32),
    ("U8", 8),
    ("BOOL", 8),
    ("F8_E4M3", 8),
    ("F4", 4),
    ("F6_E2M3", 6),
    ("U16", 16),
];

/// Tensor names the readers look for.
const NAMES: [&str; 5] = ["x0.0", "eps.0", "x0.1", "eps.1", "w"];

fn run(data: &[u8]) -> Vec<Outcome> {
    let file = match WeightFile::parse_named("fuzz.safetensors", data) {
        Ok(f) => f,
        Err(e) => return vec![Err(e.to_string())],
    };
    let mut out = vec![Ok(format!("{} tensors", file.names().len()))];
    let _ = (format!("{file:?}"), file.label(), file.metadata());
    for name in file.names() {
        assert!(file.contains(&name), "a listed tensor is not contained");
        let shape = file.shape(&name).expect("shape of a listed tensor").to_vec();
        let dtype = file.dtype(&name).expect("dtype of a listed tensor");
        let rows = shape.first().copied().unwrap_or(1);
        let row = numel(shape.get(1..).unwrap_or(&[]));
        match file.to_f32(&name) {
            Ok(v) => {
                assert_eq!(Some(v.len()), numel(&shape), "to_f32 length vs shape {shape:?}");
                out.push(Ok(format!("{dtype} rank {}", shape.len())));
            }
            Err(e) => out.push(Err(e.to_string())),
        }
        let half = rows / 2;
        // The last range is reversed on purpose (an error, not a panic).
        let reversed = Range { start: 1, end: 0 };
        let ranges = [0..0, 0..rows.min(1), half..rows, rows..rows.saturating_add(1), reversed];
        for range in ranges {
            let want = row.and_then(|r| range.len().checked_mul(r));
            match file.rows_f32(&name, range.clone()) {
                Ok(v) => assert_eq!(Some(v.len()), want, "rows {range:?} of {shape:?}"),
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }
    out.push(match stored_config(&file) {
        Ok(Some(c)) => Ok(format!("config {}", c.parallel_num)),
        Ok(None) => Ok("no config".into()),
        Err(e) => Err(e.to_string()),
    });
    out.push(Ok(format!("classes {:?}", stored_class_names(&file).map(|c| c.len()))));
    // The recorded-noise reader, asked for what the file holds (or a few values).
    let mut noise = RecordedNoise::new(&file);
    let n = |name: &str| file.shape(name).ok().and_then(numel).unwrap_or(4);
    let per_step = file
        .shape("eps.0")
        .ok()
        .and_then(|s| numel(s.get(1..).unwrap_or(&[])))
        .unwrap_or(4);
    for (draw, n) in [
        (Draw::Initial, n("x0.0")),
        (Draw::Step(0), per_step),
        (Draw::Step(1), per_step),
        (Draw::Initial, n("x0.1")),
    ] {
        match noise.draw(draw, n) {
            Ok(v) => assert_eq!(v.len(), n, "recorded noise length"),
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

/// Splits `data` into its header text and data section, when the prefix fits.
fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let end = usize::try_from(n).ok()?.checked_add(8)?;
    Some((data.get(8..end)?, &data[end..]))
}

/// A file from a header and a data section, the length prefix written to match.
fn join(header: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(rest);
    out
}

/// Header-aware mutations: the header text edited with its length prefix fixed, the header
/// edited as JSON (shapes, dtypes, entries, metadata) with the data re-laid out to match,
/// or the data section alone.
fn mutate_file(rng: &mut Rng, data: &[u8], pool: &[Vec<u8>]) -> Option<Vec<u8>> {
    let (header, rest) = split(data)?;
    match rng.below(5) {
        0 => {
            let header = mutate::mutate(rng, header, &[], TARGET.dict);
            Some(join(&header, rest))
        }
        1 => {
            let mut rest = rest.to_vec();
            for _ in 0..1 + rng.below(3) {
                mutate::mutate_once(rng, &mut rest, pool, &[]);
            }
            Some(join(header, &rest))
        }
        _ => {
            let mut value: Map<String, Value> = serde_json::from_slice(header).ok()?;
            edit_json(rng, &mut value);
            let relaid = if rng.chance(4, 5) {
                relayout(rng, &mut value, rest)
            } else {
                None
            };
            let header = serde_json::to_vec(&value).ok()?;
            Some(join(&header, relaid.as_deref().unwrap_or(rest)))
        }
    }
}

/// One structural edit of the header: a shape, a dtype, an entry added, renamed or removed, or
/// a number inside a metadata value (the config).
fn edit_json(rng: &mut Rng, header: &mut Map<String, Value>) {
    let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let name = (!names.is_empty()).then(|| rng.pick(&names).clone());
    match (rng.below(6), name) {
        (0, Some(name)) => {
            let rank = rng.below(5);
            let dims: Vec<u64> = (0..rank).map(|_| dim(rng)).collect();
            set(header, &name, "shape", json!(dims));
        }
        (1, Some(name)) => set(header, &name, "dtype", json!(rng.pick(&DTYPES).0)),
        (2, Some(name)) => {
            let entry = header[&name].clone();
            header.insert(rng.pick(&NAMES).to_string(), entry);
        }
        (3, Some(name)) => {
            let entry = header.remove(&name).unwrap_or(Value::Null);
            if rng.chance(1, 2) {
                header.insert(rng.pick(&NAMES).to_string(), entry);
            }
        }
        _ => {
            let meta = header
                .entry("__metadata__")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            let Some(meta) = meta else { return };
            let key = *rng.pick(&[CONFIG_KEY, CONFIG_KEY, CLASSES_KEY, "other"]);
            let text = meta.get(key).and_then(Value::as_str).map(str::to_string);
            let mut text = text.unwrap_or_else(|| tiny_config().to_json()).into_bytes();
            for _ in 0..1 + rng.below(3) {
                if rng.chance(3, 4) {
                    mutate::replace_number(rng, &mut text);
                } else {
                    mutate::mutate_once(rng, &mut text, &[], TARGET.dict);
                }
            }
            meta.insert(key.into(), json!(String::from_utf8_lossy(&text)));
        }
    }
}

/// Sets field `key` of entry `name`, when that entry is an object.
fn set(header: &mut Map<String, Value>, name: &str, key: &str, value: Value) {
    if let Some(entry) = header.get_mut(name).and_then(Value::as_object_mut) {
        entry.insert(key.into(), value);
    }
}

/// An interesting tensor dimension.
fn dim(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => mutate::interesting_int(rng),
        _ => rng.below(9) as u64,
    }
}

/// Gives each entry contiguous data offsets (in name order) sized by its dtype and shape, and
/// a data section of that size; `None` when sizes overflow or are too large.
fn relayout(rng: &mut Rng, header: &mut Map<String, Value>, old: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0usize;
    for (name, entry) in header.iter_mut() {
        let Some(entry) = entry.as_object_mut().filter(|_| name != "__metadata__") else {
            continue;
        };
        let bits = DTYPES
            .iter()
            .find(|(d, _)| entry.get("dtype").and_then(Value::as_str) == Some(*d))?
            .1;
        let shape: Vec<usize> = serde_json::from_value(entry.get("shape")?.clone()).ok()?;
        let bytes = numel(&shape)?.checked_mul(bits)?.div_ceil(8);
        let end = at.checked_add(bytes).filter(|&e| e <= MAX_INPUT)?;
        entry.insert("data_offsets".into(), json!([at, end]));
        at = end;
    }
    let zeros = rng.chance(1, 2) || old.is_empty();
    Some((0..at).map(|i| if zeros { 0 } else { old[i % old.len()] }).collect())
}

fn tiny_config() -> ModelConfig {
    ModelConfig::builtin("tiny").expect("tiny config")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let ramp = |n: usize| (0..n).map(|i| i as f32 * 0.25 - 1.0).collect::<Vec<f32>>();
    let (a, b, s) = (ramp(12), ramp(5), [0.5f32]);
    let tensors: [(&str, &[usize], &[f32]); 3] =
        [("w", &[3, 4], &a), ("b", &[5], &b), ("scale", &[], &s)];
    let mut meta = BTreeMap::new();
    meta.insert(CONFIG_KEY.to_string(), tiny_config().to_json());
    meta.insert(CLASSES_KEY.to_string(), r#"["cat","dog"]"#.to_string());
    let f32_file = save_safetensors(&tensors, Some(&meta)).expect("save");
    let mut meta_b4 = BTreeMap::new();
    let b4 = ModelConfig::builtin("B-4x").expect("B-4x");
    meta_b4.insert(CONFIG_KEY.to_string(), b4.to_json());
    let f16_file = save_safetensors_f16(&tensors, Some(&meta_b4)).expect("save");
    let (x0, eps) = (ramp(8), ramp(24));
    let noise = save_safetensors(
        &[("x0.0", &[2, 4], &x0), ("eps.0", &[3, 2, 4], &eps)],
        None,
    )
    .expect("save");
    // BF16, an integer tensor, an empty one, a zero-size dimension in front of huge ones.
    let bf16 = raw(
        r#"{"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[16,16]}}"#,
        &[0x80, 0x3f, 0x00, 0x40, 0x40, 0xc0, 0x00, 0x00, 7, 0, 0, 0, 0, 0, 0, 0],
    );
    let zero_huge = raw(
        r#"{"z":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}}"#,
        &[],
    );
    let nan = raw(
        r#"{"n":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
        &[0x00, 0x3c, 0x00, 0x7e],
    );
    // Offsets summing to usize::MAX (7 x 2^61 bytes, then 2^61 - 1): the end of the data plus
    // the header must not overflow.
    let mut entries = Vec::new();
    let mut at = 0u64;
    for i in 0..8 {
        let size = if i < 7 { 1u64 << 61 } else { (1 << 61) - 1 };
        entries.push(format!(
            r#""t{i}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{at},{}]}}"#,
            at + size
        ));
        at += size;
    }
    let offsets_max = raw(&format!("{{{}}}", entries.join(",")), &[]);
    let mut truncated = f32_file.clone();
    truncated.truncate(f32_file.len() - 7);
    vec![
        ("f32-config.safetensors".into(), f32_file),
        ("f16-b4x.safetensors".into(), f16_file),
        ("noise.safetensors".into(), noise),
        ("bf16-i64-empty.safetensors".into(), bf16),
        ("zero-then-huge.safetensors".into(), zero_huge),
        ("f16-nan.safetensors".into(), nan),
        ("truncated.safetensors".into(), truncated),
        ("offsets-to-usize-max.safetensors".into(), offsets_max),
    ]
}

/// Raw safetensors bytes from a header JSON string and a data section.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    join(header.as_bytes(), data)
}
