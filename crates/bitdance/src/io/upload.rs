//! Uploading weights to the GPU as f32 tensors, row-chunked when over the binding limit.

use super::WeightFile;
use crate::tensor::numel;
use crate::{Error, Gpu, Result, Tensor};

/// Uploads tensor `name` as one f32 tensor of its stored shape (Error::Limit when it is
/// larger than the adapter's storage binding: use `load_rows_chunked` for those).
pub fn load_tensor(gpu: &Gpu, file: &WeightFile<'_>, name: &str) -> Result<Tensor> {
    let shape = file.shape(name)?.to_vec();
    gpu.check_binding(
        &format!(
            "{}: tensor '{name}' {shape:?} (load it with load_rows_chunked)",
            file.label()
        ),
        numel(&shape) as u64 * 4,
    )?;
    let data = file.to_f32(name)?;
    Tensor::from_f32(gpu, &shape, &data)
}

/// Uploads the 2-D tensor `name` [R, C] as f32 row chunks [r_i, C] (sum r_i = R), each at
/// most `max_bytes` and the adapter's storage binding limit; a [0, C] tensor gives one
/// empty chunk.
pub fn load_rows_chunked(
    gpu: &Gpu,
    file: &WeightFile<'_>,
    name: &str,
    max_bytes: u64,
) -> Result<Vec<Tensor>> {
    let shape = file.shape(name)?.to_vec();
    let &[rows, cols] = shape.as_slice() else {
        return Err(Error::Shape {
            op: "load_rows_chunked",
            detail: format!(
                "{}: tensor '{name}' has shape {shape:?}, expected 2-D [rows, cols]",
                file.label()
            ),
        });
    };
    let row_bytes = cols as u64 * 4;
    let what = format!("{}: one row of tensor '{name}' {shape:?}", file.label());
    gpu.check_binding(&what, row_bytes)?;
    if row_bytes > max_bytes {
        return Err(Error::Invalid(format!(
            "{what} is {row_bytes} bytes, over the chunk size {max_bytes}"
        )));
    }
    let limit = max_bytes.min(gpu.limits().max_storage_buffer_binding_size);
    let per_chunk = match limit.checked_div(row_bytes) {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => rows.max(1),
    };
    if rows == 0 {
        return Ok(vec![Tensor::from_f32(gpu, &[0, cols], &[])?]);
    }
    (0..rows)
        .step_by(per_chunk)
        .map(|start| {
            let end = (start + per_chunk).min(rows);
            let data = file.rows_f32(name, start..end)?;
            Tensor::from_f32(gpu, &[end - start, cols], &data)
        })
        .collect()
}
