//! Reading official PyTorch checkpoints (`torch.save` zip archives) without executing
//! anything: a minimal zip reader, a restricted unpickler, and the selection of the state dict
//! (`model`, `ema` or `state_dict`, or a bare state dict; a DDP `module.` prefix is dropped).

mod pickle;
mod zip;

use std::collections::BTreeMap;

use pickle::{TensorRef, Value};

use super::{bf16_to_f32, f16_to_f32};
use crate::{Error, Result};

/// Which state dict of a checkpoint to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// `model` (or `state_dict`, or the bare dict).
    Model,
    /// `ema` (the official sampler's choice when present).
    Ema,
}

/// One tensor of a checkpoint, converted to f32, with its stored dtype name.
pub struct PtTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
    /// Storage type in the file (e.g. "FloatStorage", "HalfStorage", "BFloat16Storage").
    pub dtype: String,
}

/// A state dict read from a checkpoint.
pub struct PtStateDict {
    /// The key it was read from ("model", "ema", "state_dict" or "" for a bare dict).
    pub key: String,
    /// Tensors by name, in name order.
    pub tensors: BTreeMap<String, PtTensor>,
    /// Top-level entries that were not read (e.g. "optimizer", "args").
    pub skipped: Vec<String>,
}

impl PtStateDict {
    /// The tensors as f32 safetensors bytes under their names with `prefix` added (e.g. `vae.`
    /// for a standalone autoencoder), no metadata: what `bitdance convert` writes and the apps
    /// load when a `.pt` file is opened.
    pub fn to_safetensors(&self, prefix: &str) -> Result<Vec<u8>> {
        let names: Vec<String> = self
            .tensors
            .keys()
            .map(|n| format!("{prefix}{n}"))
            .collect();
        let views: Vec<(&str, &[usize], &[f32])> = names
            .iter()
            .zip(self.tensors.values())
            .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
            .collect();
        crate::io::save_safetensors(&views, None)
    }
}

/// Reads the selected state dict of the `torch.save` archive `bytes` (`label` names the file
/// in errors). Refuses with a clear error: anything not a zip, pickles referencing globals other
/// than tensors, storages and plain containers, unsupported dtypes, truncated data.
pub fn read_state_dict(label: &str, bytes: &[u8], select: Select) -> Result<PtStateDict> {
    read_within(label, bytes, select, values_budget(bytes.len()))
}

/// The f32 values a whole state dict may convert to: one per byte of the file, and at least
/// 2^20. A checkpoint stores each value in 2 to 8 bytes, which leaves room for tied weights
/// (tensors viewing one storage), while a forged pickle cannot make a small file claim
/// gigabytes by viewing the same storage over and over.
fn values_budget(file_len: usize) -> usize {
    file_len.max(1 << 20)
}

/// `read_state_dict` converting at most `budget` values in all.
fn read_within(label: &str, bytes: &[u8], select: Select, budget: usize) -> Result<PtStateDict> {
    let entries = zip::entries(label, bytes)?;
    let pkl = entries
        .iter()
        .find(|e| e.name.ends_with("/data.pkl") || e.name == "data.pkl")
        .ok_or_else(|| Error::Invalid(format!("{label}: no data.pkl in the archive")))?;
    let prefix = pkl.name.trim_end_matches("data.pkl").to_string();
    let root = pickle::load(label, pkl.data(label, bytes)?)?;
    let Value::Dict(top) = root else {
        return Err(Error::Invalid(format!(
            "{label}: the checkpoint's top level is not a dict"
        )));
    };
    let key_of = |k: &Value| match k {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    };
    let names: Vec<String> = top.iter().filter_map(|(k, _)| key_of(k)).collect();
    let wanted: &[&str] = match select {
        Select::Ema => &["ema"],
        Select::Model => &["model", "state_dict"],
    };
    let (key, dict) = match wanted
        .iter()
        .find_map(|w| top.iter().find(|(k, _)| key_of(k).as_deref() == Some(w)))
    {
        Some((k, Value::Dict(d))) => (key_of(k).unwrap_or_default(), d.clone()),
        Some((k, _)) => {
            return Err(Error::Invalid(format!(
                "{label}: entry '{}' is not a state dict",
                key_of(k).unwrap_or_default()
            )))
        }
        None if select == Select::Model
            && !top.is_empty()
            && top.iter().all(|(_, v)| matches!(v, Value::Tensor(_))) =>
        {
            (String::new(), top.clone())
        }
        None => {
            return Err(Error::Invalid(format!(
                "{label}: no {} entry; the checkpoint holds {names:?}",
                wanted.join(" or ")
            )))
        }
    };
    let skipped = names.into_iter().filter(|n| *n != key).collect();
    let mut tensors = BTreeMap::new();
    // Each storage is CRC-checked once, however many tensors view it.
    let mut checked = BTreeMap::new();
    let mut left = budget;
    for (k, v) in dict {
        let Some(name) = key_of(&k) else {
            return Err(Error::Invalid(format!(
                "{label}: a state-dict key is not a string"
            )));
        };
        let Value::Tensor(t) = v else {
            return Err(Error::Invalid(format!(
                "{label}: state-dict entry '{name}' is not a tensor ({})",
                describe(&v)
            )));
        };
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        let data = gather(label, bytes, &entries, &mut checked, &prefix, &name, &t)?;
        left = left.checked_sub(data.len()).ok_or_else(|| {
            Error::Invalid(format!(
                "{label}: tensor '{name}' takes the state dict past {budget} values, one per \
                 byte of the file (at least 2^20): its tensors view the same storages over and \
                 over (forged?)"
            ))
        })?;
        tensors.insert(
            name,
            PtTensor {
                shape: t.shape.clone(),
                data,
                dtype: t.kind.clone(),
            },
        );
    }
    Ok(PtStateDict {
        key,
        tensors,
        skipped,
    })
}

fn describe(v: &Value) -> String {
    match v {
        Value::Opaque(name) => format!("an object of {name}"),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

/// Bytes of f32 a converted tensor may take: larger sizes are refused before any allocation,
/// whatever its strides claim.
const MAX_BYTES: u64 = 16 << 30;

/// `MAX_BYTES` in f32 elements, within what this target's address space can allocate.
fn max_elements() -> usize {
    (MAX_BYTES.min(isize::MAX as u64) / 4) as usize
}

/// The element count of `t`, after checking with overflow-safe arithmetic that every element
/// it addresses (offset + sum of (size - 1) x stride) lies inside a storage of `available`
/// elements, and that the count is at most `max_elements()` and at most `available`.
fn checked_extent(label: &str, name: &str, t: &TensorRef, available: usize) -> Result<usize> {
    let bad = |what: String| Error::Invalid(format!("{label}: tensor '{name}' {what}"));
    let n = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= max_elements())
        .ok_or_else(|| {
            bad(format!(
                "has sizes {:?}: more than {} elements ({} GiB of f32)",
                t.shape,
                max_elements(),
                MAX_BYTES >> 30
            ))
        })?;
    if n == 0 {
        return Ok(0);
    }
    t.shape
        .iter()
        .zip(&t.strides)
        .try_fold(t.offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?))
        .filter(|&last| last < available)
        .ok_or_else(|| {
            bad(format!(
                "with sizes {:?}, strides {:?} and offset {} reads past its storage of {available} elements (truncated or forged)",
                t.shape, t.strides, t.offset
            ))
        })?;
    // A view can address fewer elements than it has (a stride of 0, overlapping strides): a
    // few forged bytes could then claim gigabytes of f32. Every element read must be stored.
    if n > available {
        return Err(bad(format!(
            "has sizes {:?} and strides {:?}: {n} elements over a storage of {available}; \
             views that repeat elements (a stride of 0, overlapping strides) are not read",
            t.shape, t.strides
        )));
    }
    Ok(n)
}

/// The tensor's values from its storage, following offset and strides (`checked` holds the
/// storages already CRC-checked, by path).
fn gather<'a>(
    label: &str,
    bytes: &'a [u8],
    entries: &[zip::Entry],
    checked: &mut BTreeMap<String, &'a [u8]>,
    prefix: &str,
    name: &str,
    t: &TensorRef,
) -> Result<Vec<f32>> {
    let path = format!("{prefix}data/{}", t.key);
    let storage = match checked.get(&path) {
        Some(data) => *data,
        None => {
            let e = entries.iter().find(|e| e.name == path).ok_or_else(|| {
                Error::Invalid(format!("{label}: storage '{path}' of '{name}' is missing"))
            })?;
            let data = e.data(label, bytes)?;
            checked.insert(path.clone(), data);
            data
        }
    };
    let (size, decode): (usize, fn(&[u8]) -> f32) = match t.kind.as_str() {
        "FloatStorage" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "HalfStorage" => (2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        "BFloat16Storage" => (2, |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        "DoubleStorage" => (8, |b| {
            f64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as f32
        }),
        other => {
            return Err(Error::Invalid(format!(
                "{label}: tensor '{name}' has dtype {other}; only float tensors are converted"
            )))
        }
    };
    if t.shape.len() != t.strides.len() {
        return Err(Error::Invalid(format!(
            "{label}: tensor '{name}' has {} sizes and {} strides",
            t.shape.len(),
            t.strides.len()
        )));
    }
    let n = checked_extent(label, name, t, storage.len() / size)?;
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..n {
        let at = t.offset
            + index
                .iter()
                .zip(&t.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        let b = storage.get(at * size..(at + 1) * size).ok_or_else(|| {
            Error::Invalid(format!(
                "{label}: tensor '{name}' reads past its storage '{path}' (truncated?)"
            ))
        })?;
        out.push(decode(b));
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{checked_extent, max_elements, read_within, values_budget, Select, TensorRef};

    #[test]
    fn a_state_dict_converts_to_at_most_one_value_per_byte_of_the_file() {
        let bare = include_bytes!("../../../../../tests/fixtures/pt/bare.pt");
        assert_eq!(values_budget(bare.len()), 1 << 20);
        assert_eq!(values_budget(3 << 20), 3 << 20);
        // bare.pt holds 6 tensors of 12 + 6 + 4 + 30 + 6 + 36 = 94 values.
        let all = read_within("bare.pt", bare, Select::Model, 94).unwrap();
        assert_eq!(all.tensors.len(), 6);
        let err = read_within("bare.pt", bare, Select::Model, 93)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("bare.pt: tensor '") && err.contains("past 93 values"),
            "{err}"
        );
    }

    fn tensor(offset: usize, shape: &[usize], strides: &[usize]) -> TensorRef {
        TensorRef {
            kind: "FloatStorage".into(),
            key: "0".into(),
            offset,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    #[test]
    fn sizes_strides_and_offsets_are_checked_against_the_storage_before_allocating() {
        let ok = |t: &TensorRef, available| checked_extent("x.pt", "w", t, available);
        assert_eq!(ok(&tensor(0, &[3, 2], &[2, 1]), 6).unwrap(), 6);
        assert_eq!(ok(&tensor(1, &[2, 2], &[1, 2]), 6).unwrap(), 4);
        assert_eq!(ok(&tensor(0, &[0, 5], &[5, 1]), 0).unwrap(), 0);
        let err = |t: &TensorRef, available| ok(t, available).unwrap_err().to_string();
        // The reported case: size 1 << 62 over a 16-byte storage.
        let msg = err(&tensor(0, &[1 << 62], &[1]), 4);
        assert!(
            msg.contains("'w'") && msg.contains(&max_elements().to_string()),
            "{msg}"
        );
        // Products and sums that overflow usize, a stride past the end, an offset past it.
        assert!(err(&tensor(0, &[1 << 40, 1 << 40], &[1, 1]), 4).contains("more than"));
        let msg = err(&tensor(0, &[2], &[usize::MAX]), 4);
        assert!(
            msg.contains("reads past its storage of 4 elements"),
            "{msg}"
        );
        assert!(err(&tensor(0, &[3, 2], &[2, 1]), 5).contains("reads past"));
        assert!(err(&tensor(usize::MAX, &[1], &[1]), 4).contains("reads past"));
        // Found by the fuzzer: a stride-0 view of one float claiming 2^29 elements (2 GiB of
        // f32 from a 4-byte storage), and overlapping strides; refused before allocating.
        let msg = err(&tensor(0, &[1 << 29], &[0]), 1);
        assert!(msg.contains("'w'") && msg.contains("stride of 0"), "{msg}");
        assert!(err(&tensor(0, &[3, 3], &[1, 1]), 5).contains("over a storage of 5"));
        assert_eq!(ok(&tensor(0, &[1], &[0]), 1).unwrap(), 1);
    }
}
