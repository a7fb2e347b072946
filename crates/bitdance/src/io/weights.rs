//! A parsed safetensors file: names, shapes, dtypes, f32 conversion. Either borrowed from its
//! bytes in memory, or only its header (a file read by range elsewhere, e.g. a browser Blob).

use std::collections::BTreeMap;
use std::ops::Range;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::convert::FloatKind;
use crate::{Error, Result};

/// Length of the little-endian u64 header-size prefix.
const PREFIX: usize = 8;

/// A safetensors file parsed from bytes (header checked, data borrowed, nothing converted yet),
/// or from its header alone (`from_header`: the data stays where it is, read by range).
pub struct WeightFile<'a> {
    label: String,
    meta: Metadata,
    /// The tensor data, when in memory (`None` for a header-only file).
    data: Option<&'a [u8]>,
    /// Offset of the tensor data in the file (prefix plus header).
    data_start: u64,
}

impl std::fmt::Debug for WeightFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WeightFile({}, {} tensors)",
            self.label,
            self.names().len()
        )
    }
}

/// How many bytes from a file's start hold its prefix and header, from its first 8 bytes
/// (`prefix`); what `WeightFile::from_header` needs. Errors name the file (`label`).
pub fn header_size(label: &str, prefix: &[u8]) -> Result<usize> {
    const MAX_HEADER: u64 = 100_000_000;
    match header_len(prefix) {
        None => Err(Error::Invalid(format!(
            "{label}: truncated: {} bytes, shorter than the 8-byte header-length prefix",
            prefix.len()
        ))),
        Some(n) if n > MAX_HEADER => Err(Error::Invalid(format!(
            "{label}: corrupted header: the prefix declares a {n}-byte header, \
             over the 100 MB limit (not a safetensors file?)"
        ))),
        Some(n) => Ok(PREFIX + n as usize),
    }
}

impl WeightFile<'static> {
    /// Parses only the header of a safetensors file of `file_len` bytes: `head` is its first
    /// `header_size` bytes. Names, shapes, dtypes and metadata are checked as `parse` checks
    /// them (the offsets must end exactly at `file_len`); tensor data is then read by range
    /// (`data_range`, `row_range`) and widened with `decode_rows_f32`, so the file is never whole
    /// in memory.
    pub fn from_header(label: &str, head: &[u8], file_len: u64) -> Result<Self> {
        let n = header_size(label, head)? - PREFIX;
        if head.len() != PREFIX + n {
            return Err(Error::Invalid(format!(
                "{label}: the header is {} bytes but {} were given",
                PREFIX + n,
                head.len()
            )));
        }
        // `read_metadata` checks the header in full, then the data length: with no data given,
        // a header whose tensors hold bytes ends in `MetadataIncompleteBuffer`, checked here
        // against the file's real length.
        let meta = match SafeTensors::read_metadata(head) {
            Ok((_, meta)) => meta,
            Err(SafeTensorError::MetadataIncompleteBuffer) => {
                serde_json::from_slice::<Metadata>(&head[PREFIX..]).map_err(|e| {
                    Error::Invalid(format!(
                        "{label}: corrupted header (invalid JSON or fields): {e}"
                    ))
                })?
            }
            Err(e) => return Err(Error::Invalid(parse_error(label, head, e))),
        };
        let need = (PREFIX + n + meta.data_len()) as u64;
        if need != file_len {
            let what = if need > file_len {
                "truncated"
            } else {
                "data length mismatch"
            };
            return Err(Error::Invalid(format!(
                "{label}: {what}: the tensors need {} bytes of data but {} bytes follow the header",
                meta.data_len(),
                file_len.saturating_sub((PREFIX + n) as u64)
            )));
        }
        check_sizes(label, &meta)?;
        Ok(WeightFile {
            label: label.to_string(),
            meta,
            data: None,
            data_start: (PREFIX + n) as u64,
        })
    }
}

impl<'a> WeightFile<'a> {
    /// Parses safetensors bytes; errors say "safetensors data" where a file name would go.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        Self::parse_named("safetensors data", bytes)
    }

    /// Parses safetensors bytes; `label` (the file name) starts every error message.
    pub fn parse_named(label: &str, bytes: &'a [u8]) -> Result<Self> {
        let (n, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Invalid(parse_error(label, bytes, e)))?;
        check_sizes(label, &meta)?;
        Ok(WeightFile {
            label: label.to_string(),
            meta,
            data: Some(&bytes[PREFIX + n..]),
            data_start: (PREFIX + n) as u64,
        })
    }

    /// The bytes `range` of the file (in memory), e.g. a tensor's `data_range`; an error for a
    /// header-only file or a range past the end.
    pub fn bytes(&self, range: Range<u64>) -> Result<&'a [u8]> {
        let data = self.data.ok_or_else(|| self.not_in_memory())?;
        let start = range.start.checked_sub(self.data_start);
        let end = range.end.checked_sub(self.data_start);
        start
            .zip(end)
            .and_then(|(s, e)| data.get(usize::try_from(s).ok()?..usize::try_from(e).ok()?))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: bytes {range:?} are outside the tensor data ({} bytes from offset {})",
                    self.label,
                    data.len(),
                    self.data_start
                ))
            })
    }

    /// The byte range of tensor `name`'s data within the whole file.
    pub fn data_range(&self, name: &str) -> Result<Range<u64>> {
        let (start, end) = self.info(name)?.data_offsets;
        Ok(self.data_start + start as u64..self.data_start + end as u64)
    }

    /// Rows `rows` (along the first dimension) of tensor `name` as f32 from their stored bytes
    /// (`row_range` of them), with the checks of `rows_f32`.
    pub fn decode_rows_f32(
        &self,
        name: &str,
        rows: Range<usize>,
        bytes: &[u8],
    ) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        let kind = self.float_kind(name, info)?;
        let row: usize = info.shape.iter().skip(1).product();
        let need = rows.len() * row * kind.size();
        if bytes.len() != need {
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' ({}, shape {:?}) needs {need} bytes for rows {rows:?}, {} were read",
                self.label,
                info.dtype,
                info.shape,
                bytes.len()
            )));
        }
        self.decode_checked(name, info, kind, bytes, rows.start * row)
    }

    /// The byte range of rows `rows` (along the first dimension) of tensor `name` in the file.
    pub fn row_range(&self, name: &str, rows: Range<usize>) -> Result<Range<u64>> {
        let info = self.info(name)?;
        let kind = self.float_kind(name, info)?;
        let row_bytes = (info.shape.iter().skip(1).product::<usize>() * kind.size()) as u64;
        let start = self.data_range(name)?.start;
        Ok(start + rows.start as u64 * row_bytes..start + rows.end as u64 * row_bytes)
    }

    fn not_in_memory(&self) -> Error {
        Error::Invalid(format!(
            "{}: only the header is in memory; read a tensor by its data_range and decode_rows_f32",
            self.label
        ))
    }

    /// The label given at parse time (file name), used in error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.meta.tensors().into_keys().collect();
        names.sort();
        names
    }

    /// Whether the file holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.meta.info(name).is_some()
    }

    /// Shape of tensor `name` (error naming the file when absent).
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.info(name)?.shape)
    }

    /// Stored dtype of tensor `name`, as safetensors spells it ("F32", "BF16", ...).
    pub fn dtype(&self, name: &str) -> Result<String> {
        Ok(self.info(name)?.dtype.to_string())
    }

    /// The file's string metadata (`__metadata__`), sorted by key; empty when absent.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.meta
            .metadata()
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Tensor `name` as row-major f32 values (F32, F16 and BF16 stored tensors).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let rows = self.shape(name)?.first().copied().unwrap_or(1);
        self.rows_f32(name, 0..rows)
    }

    /// Rows `rows` (along the first dimension) of tensor `name` as f32; a 0-D tensor has 1 row.
    /// A NaN or infinite value is an error naming the file, tensor and element.
    pub fn rows_f32(&self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        let kind = self.float_kind(name, info)?;
        let (n_rows, row_elems) = match info.shape.split_first() {
            Some((&r, rest)) => (r, rest.iter().product::<usize>()),
            None => (1, 1),
        };
        if rows.start > rows.end || rows.end > n_rows {
            return Err(Error::Shape {
                op: "WeightFile::rows_f32",
                detail: format!(
                    "{}: rows {rows:?} of tensor '{name}' with shape {:?}",
                    self.label, info.shape
                ),
            });
        }
        let row_bytes = row_elems * kind.size();
        let (start, end) = info.data_offsets;
        let data = self.data.ok_or_else(|| self.not_in_memory())?;
        let bytes = data
            .get(start + rows.start * row_bytes..start + rows.end * row_bytes)
            .filter(|_| end - start == n_rows * row_bytes)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: data length mismatch: tensor '{name}' ({}, shape {:?}) has {} bytes",
                    self.label,
                    info.dtype,
                    info.shape,
                    end - start
                ))
            })?;
        self.decode_checked(name, info, kind, bytes, rows.start * row_elems)
    }

    /// `bytes` of tensor `name` widened to f32, refusing a non-finite value (named by its
    /// element, counted from `first_element`): no weight, moment or recorded draw is ever
    /// legitimately non-finite, and a run must not start from one.
    fn decode_checked(
        &self,
        name: &str,
        info: &TensorInfo,
        kind: FloatKind,
        bytes: &[u8],
        first_element: usize,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(bytes.len() / kind.size());
        kind.decode_into(bytes, &mut out);
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            let element = first_element + i;
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' {:?} holds a non-finite value ({}) at element {element}: the file is damaged or was written by a run that diverged",
                self.label, info.shape, out[i]
            )));
        }
        Ok(out)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.meta.info(name).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no tensor named '{name}' (the file holds {} tensors)",
                self.label,
                self.meta.tensors().len()
            ))
        })
    }

    fn float_kind(&self, name: &str, info: &TensorInfo) -> Result<FloatKind> {
        match info.dtype {
            Dtype::F32 => Ok(FloatKind::F32),
            Dtype::F16 => Ok(FloatKind::F16),
            Dtype::BF16 => Ok(FloatKind::BF16),
            other => Err(Error::Invalid(format!(
                "{}: tensor '{name}' (shape {:?}) has unsupported dtype {other}: \
                 expected F32, F16 or BF16",
                self.label, info.shape
            ))),
        }
    }
}

/// Refuses a tensor whose sizes, zeros left out, overflow a count of bits. safetensors accepts
/// a shape such as [0, 2^40, 2^40] (no elements, so no data), but the readers multiply some of
/// its sizes (a row's elements, a row's bytes): with this check every such product fits.
fn check_sizes(label: &str, meta: &Metadata) -> Result<()> {
    for name in meta.offset_keys() {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let bits = info
            .shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(info.dtype.bitsize(), |acc, &d| acc.checked_mul(d));
        if bits.is_none() {
            return Err(Error::Invalid(format!(
                "{label}: corrupted header: tensor '{name}' ({}, shape {:?}) has sizes whose \
                 product overflows (a zero size makes it empty, but its other sizes must \
                 still multiply to a byte count)",
                info.dtype, info.shape
            )));
        }
    }
    Ok(())
}

/// The declared header length, when the 8-byte prefix is present.
fn header_len(bytes: &[u8]) -> Option<u64> {
    let prefix: [u8; PREFIX] = bytes.get(..PREFIX)?.try_into().ok()?;
    Some(u64::from_le_bytes(prefix))
}

/// Turns a safetensors parse error into a message naming the file and, where it can, the tensor.
fn parse_error(label: &str, bytes: &[u8], e: SafeTensorError) -> String {
    let len = bytes.len();
    let n = header_len(bytes).unwrap_or(0);
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("{label}: truncated: {len} bytes, shorter than the 8-byte header-length prefix")
        }
        SafeTensorError::InvalidHeaderLength => format!(
            "{label}: truncated or corrupted header: the prefix declares a {n}-byte header \
             but only {} bytes follow",
            len.saturating_sub(PREFIX)
        ),
        SafeTensorError::HeaderTooLarge => format!(
            "{label}: corrupted header: the prefix declares a {n}-byte header, \
             over the 100 MB limit (not a safetensors file?)"
        ),
        SafeTensorError::InvalidHeader(err) => {
            format!("{label}: corrupted header: not UTF-8 ({err})")
        }
        SafeTensorError::InvalidHeaderDeserialization(err) => {
            let msg = err.to_string();
            if msg.contains("unknown variant") {
                format!("{label}: unsupported or unknown dtype in the header: {msg}")
            } else {
                format!("{label}: corrupted header (invalid JSON or fields): {msg}")
            }
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "{label}: corrupted header: tensor '{name}' has data offsets that do not \
             continue where the previous tensor ends"
        ),
        SafeTensorError::TensorInvalidInfo => format!(
            "{label}: data length mismatch: {}",
            diagnose(bytes, n).unwrap_or_else(|| "a tensor's offsets do not fit its \
                 dtype and shape"
                .into())
        ),
        SafeTensorError::MetadataIncompleteBuffer => {
            let have = len.saturating_sub(PREFIX + n as usize);
            match declared_data_len(bytes, n) {
                Some(need) if need > have => format!(
                    "{label}: truncated: the tensors need {need} bytes of data \
                     but {have} bytes follow the header"
                ),
                Some(need) => format!(
                    "{label}: data length mismatch: the tensors need {need} bytes of data \
                     but {have} bytes follow the header"
                ),
                None => format!("{label}: data length mismatch: {have} bytes of data"),
            }
        }
        other => format!("{label}: corrupted header: {other}"),
    }
}

/// One tensor entry of a header: name, dtype, shape, data offsets.
type Entry = (String, Dtype, Vec<usize>, [usize; 2]);

/// Tensor entries of the header JSON, `__metadata__` left out.
fn header_entries(bytes: &[u8], n: u64) -> Option<Vec<Entry>> {
    let header = bytes.get(PREFIX..PREFIX.checked_add(usize::try_from(n).ok()?)?)?;
    let value: serde_json::Value = serde_json::from_slice(header).ok()?;
    let mut out = Vec::new();
    for (name, entry) in value.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let dtype: Dtype = serde_json::from_value(entry.get("dtype")?.clone()).ok()?;
        let shape: Vec<usize> = serde_json::from_value(entry.get("shape")?.clone()).ok()?;
        let offsets: [usize; 2] =
            serde_json::from_value(entry.get("data_offsets")?.clone()).ok()?;
        out.push((name.clone(), dtype, shape, offsets));
    }
    Some(out)
}

/// The data length the header's offsets declare.
fn declared_data_len(bytes: &[u8], n: u64) -> Option<usize> {
    let entries = header_entries(bytes, n)?;
    Some(entries.iter().map(|e| e.3[1]).max().unwrap_or(0))
}

/// Names the first tensor whose offsets disagree with its dtype and shape.
fn diagnose(bytes: &[u8], n: u64) -> Option<String> {
    header_entries(bytes, n)?
        .into_iter()
        .find_map(|(name, dtype, shape, [s, e])| {
            let need = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))?
                .checked_mul(dtype.bitsize())?
                / 8;
            (e.checked_sub(s) != Some(need)).then(|| {
                format!(
                    "tensor '{name}' ({dtype}, shape {shape:?}) needs {need} bytes \
                     but its data offsets [{s}, {e}] span {}",
                    e.saturating_sub(s)
                )
            })
        })
}
