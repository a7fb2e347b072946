//! PyTorch `torch.save` checkpoints (zip + pickle): `read_state_dict` for both selections, and
//! every tensor it returns (shape, values, dtype) checked against its shape.

use bitdance::io::{read_state_dict, Select};

use super::{numel, Outcome, Target};
use crate::mutate::{self, interesting_int};
use crate::rng::Rng;
use crate::zipfile;

/// The target.
pub const TARGET: Target = Target {
    name: "pt",
    about: "read_state_dict (model and ema) and every tensor it returns",
    run,
    mutate: mutate_archive,
    dict: &[
        b"FloatStorage",
        b"HalfStorage",
        b"BFloat16Storage",
        b"DoubleStorage",
        b"LongStorage",
        b"_rebuild_tensor_v2",
        b"_rebuild_parameter",
        b"OrderedDict",
        b"model",
        b"ema",
        b"state_dict",
        b"module.",
        b"storage",
        b"(",
        b"t",
        b"R",
        b"Q",
        b"q\x00",
        b"h\x00",
        b"j\x01\x00\x00\x00",
        b"\x94",
        b"}",
        b"]",
        b")",
        b"s",
        b"u",
        b"a",
        b"e",
        b"b",
        b".",
        b"N",
        b"\x85",
        b"\x86",
        b"\x93",
        b"\x81",
        b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"cbuiltins\neval\n",
    ],
    seeds,
};

fn run(data: &[u8]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for select in [Select::Model, Select::Ema] {
        match read_state_dict("fuzz.pt", data, select) {
            Ok(dict) => {
                for (name, t) in &dict.tensors {
                    let n = numel(&t.shape);
                    assert_eq!(Some(t.data.len()), n, "'{name}' {:?} values", t.shape);
                    assert!(!t.dtype.is_empty(), "'{name}' has no dtype");
                }
                out.push(Ok(format!(
                    "{select:?} '{}' {} tensors, {} skipped",
                    dict.key,
                    dict.tensors.len(),
                    dict.skipped.len()
                )));
            }
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

/// Archive-aware mutations: one member (mostly the pickle, else a storage) edited, or members
/// dropped, duplicated or renamed, then a valid stored zip rebuilt with fresh CRC-32s.
fn mutate_archive(rng: &mut Rng, data: &[u8], pool: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut members = zipfile::read(data)?;
    if members.is_empty() {
        return None;
    }
    let pkl = members.iter().position(|(n, _)| n.ends_with("data.pkl"));
    match (rng.below(10), pkl) {
        (0..=5, Some(i)) => {
            let pickle = &mut members[i].1;
            for _ in 0..1 + rng.below(3) {
                if rng.chance(1, 2) {
                    widen_int(rng, pickle);
                } else {
                    mutate::mutate_once(rng, pickle, &[], TARGET.dict);
                }
            }
        }
        (6 | 7, _) => {
            let i = rng.below(members.len());
            let member = &mut members[i].1;
            mutate::mutate_once(rng, member, pool, &[]);
        }
        (8, _) => {
            let i = rng.below(members.len());
            match rng.below(3) {
                0 => {
                    members.remove(i);
                }
                1 => members.push(members[i].clone()),
                _ => {
                    let name = &mut members[i].0;
                    let mut bytes = std::mem::take(name).into_bytes();
                    mutate::mutate_once(rng, &mut bytes, &[], &[b"data/", b"0", b"/"]);
                    *name = String::from_utf8_lossy(&bytes).to_string();
                }
            }
        }
        _ => {
            // The pickle of another archive in the pool, spliced into this one.
            let other = zipfile::read(pool.get(rng.below(pool.len()))?)?;
            let (_, theirs) = other.into_iter().find(|(n, _)| n.ends_with("data.pkl"))?;
            let i = pkl?;
            let mine = &mut members[i].1;
            let cut = rng.below(mine.len() + 1);
            mine.truncate(cut);
            mine.extend_from_slice(&theirs[rng.below(theirs.len())..]);
        }
    }
    Some(zipfile::write(&members))
}

/// Rewrites one small pickle integer (BININT1 `K n`) as a wide one: BININT (`J`, 4 bytes) or
/// LONG1 (`\x8a`, up to 8 bytes) holding an interesting value.
fn widen_int(rng: &mut Rng, pickle: &mut Vec<u8>) {
    let sites: Vec<usize> = (0..pickle.len().saturating_sub(1))
        .filter(|&i| pickle[i] == b'K')
        .collect();
    if sites.is_empty() {
        return;
    }
    let at = *rng.pick(&sites);
    let v = interesting_int(rng);
    let wide: Vec<u8> = match rng.below(3) {
        0 => [&[b'J'][..], &(v as u32).to_le_bytes()].concat(),
        1 => [&[b'M'][..], &(v as u16).to_le_bytes()].concat(),
        _ => {
            let n = 1 + rng.below(8);
            [&[0x8a, n as u8][..], &v.to_le_bytes()[..n]].concat()
        }
    };
    pickle.splice(at..at + 2, wide);
}

/// One tensor of a hand-made checkpoint: name, storage type, storage key, offset, sizes,
/// strides.
type Spec<'a> = (&'a str, &'a str, &'a str, u64, &'a [u64], &'a [u64]);

/// A protocol-2 pickle of a bare state dict of `tensors`, as torch.save writes one.
fn pickle(tensors: &[Spec]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    for &(name, kind, key, offset, sizes, strides) in tensors {
        p.extend(text(name));
        p.extend(tensor(kind, key, offset, sizes, strides));
    }
    p.extend_from_slice(b"u.");
    p
}

/// BINUNICODE `s`.
fn text(s: &str) -> Vec<u8> {
    [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat()
}

/// The pickle of one tensor: `_rebuild_tensor_v2` of a persistent storage reference.
fn tensor(kind: &str, key: &str, offset: u64, sizes: &[u64], strides: &[u64]) -> Vec<u8> {
    let long = |v: u64| [&[0x8a, 8][..], &v.to_le_bytes()].concat();
    let tuple = |vs: &[u64]| {
        let mut t = vec![b'('];
        vs.iter().for_each(|&v| t.extend(long(v)));
        t.push(b't');
        t
    };
    let mut p = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    p.extend(text("storage"));
    p.extend_from_slice(format!("ctorch\n{kind}\n").as_bytes());
    p.extend(text(key));
    p.extend(text("cpu"));
    p.extend(long(1));
    p.extend_from_slice(b"tQ");
    p.extend(long(offset));
    p.extend(tuple(sizes));
    p.extend(tuple(strides));
    p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    p
}

/// A state dict of `views` names all bound to one memoized tensor of `n` floats (BINGET).
fn many_views(n: u64, views: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(text("v0"));
    p.extend(tensor("FloatStorage", "0", 0, &[n], &[1]));
    p.extend_from_slice(b"q\x01");
    for i in 1..views {
        p.extend(text(&format!("v{i}")));
        p.extend_from_slice(b"h\x01");
    }
    p.extend_from_slice(b"u.");
    p
}

/// A stored zip as torch.save lays one out: `archive/data.pkl`, storages, version, byteorder.
fn archive(pkl: Vec<u8>, storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut members = vec![("archive/data.pkl".to_string(), pkl)];
    for (key, data) in storages {
        members.push((format!("archive/data/{key}"), data.clone()));
    }
    members.push(("archive/version".into(), b"3\n".to_vec()));
    members.push(("archive/byteorder".into(), b"little".to_vec()));
    zipfile::write(&members)
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let fixture = |name: &str, bytes: &[u8]| (format!("fixture-{name}"), bytes.to_vec());
    let floats: Vec<u8> = (0..6).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
    let halves: Vec<u8> = (0..6u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    let made = pickle(&[
        ("w", "FloatStorage", "0", 0, &[2, 3], &[3, 1]),
        ("wt", "FloatStorage", "0", 1, &[2, 2], &[1, 3]),
        ("h", "HalfStorage", "1", 0, &[3], &[2]),
        ("d", "DoubleStorage", "2", 0, &[0], &[1]),
    ]);
    // Nasty: a stride-0 view of one float claiming 2^29 elements (2 GiB of f32), a size of
    // 2^62, and a storage key that is missing.
    let stride0 = pickle(&[("s", "FloatStorage", "0", 0, &[1 << 29], &[0])]);
    let huge = pickle(&[("s", "FloatStorage", "0", 0, &[1 << 62], &[1])]);
    let missing = pickle(&[("m", "FloatStorage", "9", 0, &[1], &[1])]);
    // 8192 floats viewed by 160 names: 1.3M values from a 35 KB file, past the reader's budget.
    let views = many_views(8192, 160);
    let storage: Vec<u8> = (0..8192).flat_map(|i| (i as f32).to_le_bytes()).collect();
    vec![
        fixture("bare.pt", include_bytes!("../../../tests/fixtures/pt/bare.pt")),
        fixture("checkpoint.pt", include_bytes!("../../../tests/fixtures/pt/checkpoint.pt")),
        fixture("shared.pt", include_bytes!("../../../tests/fixtures/pt/shared.pt")),
        fixture("malicious.pt", include_bytes!("../../../tests/fixtures/pt/malicious.pt")),
        (
            "made.pt".into(),
            archive(made, &[("0", floats.clone()), ("1", halves), ("2", vec![])]),
        ),
        ("stride0.pt".into(), archive(stride0, &[("0", floats[..4].to_vec())])),
        ("size-2e62.pt".into(), archive(huge, &[("0", floats.clone())])),
        ("missing-storage.pt".into(), archive(missing, &[("0", floats)])),
        ("many-views.pt".into(), archive(views, &[("0", storage)])),
        ("legacy.pt".into(), b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec()),
    ]
}
