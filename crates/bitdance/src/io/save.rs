//! Writing f32 tensors as safetensors bytes (the caller writes them to disk atomically).

use std::collections::{BTreeMap, BTreeSet};

use crate::tensor::numel;
use crate::{Error, Result};

/// Serialises `(name, shape, values)` f32 tensors and optional string metadata to safetensors
/// bytes; tensors are laid out sorted by name, so equal inputs give identical bytes.
pub fn save_safetensors(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    save_as(tensors, metadata, false)
}

/// `save_safetensors` storing every tensor as F16 (round to nearest even): half the size, for
/// shipping weights that tolerate it.
pub fn save_safetensors_f16(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    save_as(tensors, metadata, true)
}

fn save_as(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: Option<&BTreeMap<String, String>>,
    half: bool,
) -> Result<Vec<u8>> {
    let mut order: Vec<&(&str, &[usize], &[f32])> = tensors.iter().collect();
    order.sort_by_key(|t| t.0);
    for &&(name, shape, data) in &order {
        if numel(shape) != data.len() {
            return Err(Error::DataLength {
                what: format!("save_safetensors: tensor '{name}'"),
                shape: shape.to_vec(),
                expected: numel(shape),
                found: data.len(),
            });
        }
    }
    let entries: Vec<(&str, &[usize])> = order.iter().map(|t| (t.0, t.1)).collect();
    let mut out = safetensors_header(&entries, metadata, half)?;
    for &&(_, _, data) in &order {
        encode_values(data, half, &mut out);
    }
    Ok(out)
}

/// The header of a safetensors file (its length, the JSON, padding) whose tensors `entries`
/// (name, shape) follow in the given order, F32 or F16 (`half`), with optional metadata: the
/// bytes `save_safetensors` starts with, for writers that append one tensor at a time.
pub fn safetensors_header(
    entries: &[(&str, &[usize])],
    metadata: Option<&BTreeMap<String, String>>,
    half: bool,
) -> Result<Vec<u8>> {
    let size = if half { 2 } else { 4 };
    let dtype = if half { "F16" } else { "F32" };
    let mut seen = BTreeSet::new();
    for &(name, _) in entries {
        if name == "__metadata__" || !seen.insert(name) {
            return Err(Error::Invalid(format!(
                "save_safetensors: tensor name '{name}' is reserved or given twice"
            )));
        }
    }
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut fields = Vec::with_capacity(entries.len() + 1);
    if let Some(meta) = metadata.filter(|m| !m.is_empty()) {
        let pairs: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{}:{}", json(k), json(v)))
            .collect();
        fields.push(format!("\"__metadata__\":{{{}}}", pairs.join(",")));
    }
    let mut offset = 0usize;
    for &(name, shape) in entries {
        let end = offset + numel(shape) * size;
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        fields.push(format!(
            "{}:{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            dims.join(",")
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", fields.join(","));
    // The format pads the header with spaces so the data starts 8-byte aligned.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

/// Appends `values` to `out` as little-endian F32, or F16 (round to nearest even) when `half`.
pub fn encode_values(values: &[f32], half: bool, out: &mut Vec<u8>) {
    out.reserve(values.len() * if half { 2 } else { 4 });
    for v in values {
        if half {
            out.extend_from_slice(&super::f32_to_f16(*v).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}
