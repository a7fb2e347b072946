//! GPU tensors: a pooled storage buffer with a shape and a dtype, always contiguous row-major;
//! a tensor may view a range of rows of another's storage (`Tensor::rows`).

use std::sync::Arc;

use crate::gpu::Gpu;
use crate::{Error, Result};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (indices, class labels, packed bits).
    U32,
    /// IEEE 16-bit float, two per 32-bit word (element 2i in the low half): inference
    /// weights, read by the kernels that take them and widened to f32 there.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// Bytes of storage for `numel` elements of `dtype`, rounded up to whole 32-bit words.
fn storage_bytes(numel: usize, dtype: DType) -> u64 {
    ((numel * dtype.size()).div_ceil(4) * 4) as u64
}

/// `data` as IEEE halves (nearest even), as bits.
fn halves(data: &[f32]) -> Vec<u16> {
    data.iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect()
}

/// The storage of a tensor; its buffer goes back to the pool when the last user drops it.
struct Storage {
    gpu: Gpu,
    buffer: Option<wgpu::Buffer>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.gpu.release(buffer);
        }
    }
}

/// A contiguous row-major tensor on one GPU; clones share the storage.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    /// Where the tensor starts in the storage buffer, in bytes (0 unless a view of rows).
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An uninitialised tensor (NaN-filled when the GPU's poison mode is on).
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Self> {
        Self::alloc(gpu, shape, dtype, gpu.poison_outputs(), false)
    }

    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    /// `exact`: sized to the data (uploads, kept as they are) instead of a reusable size class.
    fn alloc(gpu: &Gpu, shape: &[usize], dtype: DType, poison: bool, exact: bool) -> Result<Self> {
        let bytes = storage_bytes(numel(shape), dtype);
        gpu.check_binding(&format!("tensor of shape {shape:?}"), bytes)?;
        let t = Tensor {
            storage: Arc::new(Storage {
                gpu: gpu.clone(),
                buffer: Some(gpu.acquire(bytes.max(4), exact)),
            }),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        };
        if poison && dtype != DType::F16 {
            crate::ops::fill_bits(&t, f32::NAN.to_bits())?;
        }
        Ok(t)
    }

    /// A tensor filled with `value`.
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Self> {
        let t = Self::alloc(gpu, shape, DType::F32, false, false)?;
        crate::ops::fill_bits(&t, value.to_bits())?;
        Ok(t)
    }

    /// A tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Self> {
        Self::full(gpu, shape, 0.0)
    }

    /// Uploads `data` (row-major, `numel(shape)` values) as an f32 tensor.
    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::upload(
            gpu,
            shape,
            DType::F32,
            bytemuck::cast_slice(data),
            data.len(),
            false,
        )
    }

    /// Uploads `data` rounded to IEEE half precision (nearest even) as an f16 tensor.
    pub fn from_f32_as_f16(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::upload(
            gpu,
            shape,
            DType::F16,
            bytemuck::cast_slice(&halves(data)),
            data.len(),
            false,
        )
    }

    /// Uploads a weight kept for the session as `dtype` (F32, or F16 rounded to nearest even),
    /// in a buffer sized to its data rather than a pooled size class (up to 12.5% larger);
    /// freed, not pooled, when dropped. Per-step uploads use `from_f32`, which reuses buffers.
    pub fn weight_from_f32(gpu: &Gpu, shape: &[usize], data: &[f32], dtype: DType) -> Result<Self> {
        match dtype {
            DType::F16 => {
                let bits = halves(data);
                Self::upload(
                    gpu,
                    shape,
                    dtype,
                    bytemuck::cast_slice(&bits),
                    data.len(),
                    true,
                )
            }
            _ => Self::upload(
                gpu,
                shape,
                DType::F32,
                bytemuck::cast_slice(data),
                data.len(),
                true,
            ),
        }
    }

    /// A weight of `shape` held as `dtype` (F32 or F16), sized to its data and not pooled, its
    /// values still to be written (`write_rows_f32`): for weights uploaded a piece at a time.
    pub fn weight_uninit(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Self> {
        let dtype = if dtype == DType::F16 {
            DType::F16
        } else {
            DType::F32
        };
        Self::alloc(gpu, shape, dtype, false, true)
    }

    /// Writes `data` (f32, converted to the tensor's dtype) over rows `first_row..` along the
    /// first dimension, ordered after work already recorded. The rows' bytes must start and end
    /// on 4-byte boundaries (always for f32; for f16, rows of an even number of values).
    pub fn write_rows_f32(&self, first_row: usize, data: &[f32]) -> Result<()> {
        let row = self.shape.iter().skip(1).product::<usize>().max(1);
        let rows = self.shape.first().copied().unwrap_or(1);
        let size = match self.dtype {
            DType::F16 => 2,
            DType::F32 => 4,
            other => {
                return Err(Error::DType {
                    op: "write_rows_f32",
                    what: "tensor",
                    expected: DType::F32,
                    found: other,
                })
            }
        };
        let n_rows = data.len() / row;
        if !data.len().is_multiple_of(row)
            || first_row + n_rows > rows
            || !(row * size).is_multiple_of(4)
        {
            return Err(Error::Shape {
                op: "write_rows_f32",
                detail: format!(
                    "{} values from row {first_row} into {:?} ({:?}, rows of {row} values)",
                    data.len(),
                    self.shape,
                    self.dtype
                ),
            });
        }
        let offset = (first_row * row * size) as u64;
        match self.dtype {
            DType::F16 => self.write_bytes_at(offset, bytemuck::cast_slice(&halves(data))),
            _ => self.write_bytes_at(offset, bytemuck::cast_slice(data)),
        }
        Ok(())
    }

    /// Uploads `data` as a u32 tensor (indices, labels).
    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Self> {
        Self::upload(
            gpu,
            shape,
            DType::U32,
            bytemuck::cast_slice(data),
            data.len(),
            false,
        )
    }

    /// `exact`: see `weight_from_f32`.
    fn upload(
        gpu: &Gpu,
        shape: &[usize],
        dtype: DType,
        bytes: &[u8],
        len: usize,
        exact: bool,
    ) -> Result<Self> {
        if len != numel(shape) {
            return Err(Error::DataLength {
                what: format!("upload of a {dtype:?} tensor"),
                shape: shape.to_vec(),
                expected: numel(shape),
                found: len,
            });
        }
        let t = Self::alloc(gpu, shape, dtype, false, exact)?;
        t.write_bytes(bytes);
        Ok(t)
    }

    /// Overwrites the whole tensor with `bytes`, ordered after work already recorded.
    pub(crate) fn write_bytes(&self, bytes: &[u8]) {
        self.write_bytes_at(0, bytes);
    }

    /// Overwrites the tensor's bytes from `offset` (a multiple of 4) with `bytes`, ordered after
    /// work already recorded.
    fn write_bytes_at(&self, offset: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let gpu = self.gpu();
        let padded = (bytes.len() as u64).div_ceil(4) * 4;
        let staging = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("upload"),
            size: padded,
            usage: wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        if let Ok(mut view) = staging.get_mapped_range_mut(..) {
            view.slice(..bytes.len()).copy_from_slice(bytes);
        }
        staging.unmap();
        gpu.copy(&staging, 0, self.buffer(), self.offset + offset, padded);
    }

    /// Overwrites the tensor with `data`; its length must match.
    pub fn write_f32(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() || self.dtype != DType::F32 {
            return Err(Error::DataLength {
                what: format!("write into {self:?}"),
                shape: self.shape.clone(),
                expected: self.numel(),
                found: data.len(),
            });
        }
        self.write_bytes(bytemuck::cast_slice(data));
        Ok(())
    }

    /// The same storage seen with another shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            return Err(Error::Shape {
                op: "reshape",
                detail: format!("cannot view {:?} as {shape:?}", self.shape),
            });
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            offset: self.offset,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// Rows `first..first + count` of dim 0 (shape `[count, ..]`): a view of the same storage
    /// when the adapter can bind it there (the start a multiple of its storage-offset
    /// alignment), else a copy. Writes through a view land in this tensor.
    pub fn rows(&self, first: usize, count: usize) -> Result<Self> {
        let total = self.shape.first().copied().unwrap_or(1);
        if self.shape.is_empty() || first + count > total || count == 0 {
            return Err(Error::Shape {
                op: "rows",
                detail: format!("rows {first}..{} of {:?}", first + count, self.shape),
            });
        }
        let row_bytes = (self.numel() / total * self.dtype.size()) as u64;
        if !row_bytes.is_multiple_of(4) {
            return Err(Error::Shape {
                op: "rows",
                detail: format!(
                    "rows of {:?} {:?} do not start on 32-bit words",
                    self.dtype, self.shape
                ),
            });
        }
        let offset = self.offset + first as u64 * row_bytes;
        let align = self.gpu().limits().min_storage_buffer_offset_alignment as u64;
        if !offset.is_multiple_of(align) {
            return crate::ops::slice(self, 0, first, count);
        }
        let mut shape = self.shape.clone();
        shape[0] = count;
        Ok(Tensor {
            storage: self.storage.clone(),
            offset,
            shape,
            dtype: self.dtype,
        })
    }

    /// Copies the values to the host as f32, f16 widened (async: resolves once the GPU is
    /// done).
    pub async fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let bytes = self
            .gpu()
            .read_buffer(self.buffer(), self.offset, self.byte_len())
            .await?;
        if self.dtype == DType::F16 {
            let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
            return Ok(halves[..self.numel()]
                .iter()
                .map(|&h| half::f16::from_bits(h).to_f32())
                .collect());
        }
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Copies rows `first..first + count` (along the first dimension) to the host as f32, f16
    /// widened; the rows must start and end on 4-byte boundaries (always for f32; for f16,
    /// rows of an even number of values or an even `first` and `count`).
    pub async fn rows_to_vec_f32(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        let total = self.shape.first().copied().unwrap_or(1);
        let row_values = self.numel() / total.max(1);
        let (start, len) = (
            (first * row_values * self.dtype.size()) as u64,
            (count * row_values * self.dtype.size()) as u64,
        );
        if first + count > total || !start.is_multiple_of(4) || !len.is_multiple_of(4) {
            return Err(Error::Shape {
                op: "rows_to_vec_f32",
                detail: format!(
                    "rows {first}..{} of {:?} {:?} (on 4-byte boundaries)",
                    first + count,
                    self.dtype,
                    self.shape
                ),
            });
        }
        let bytes = self
            .gpu()
            .read_buffer(self.buffer(), self.offset + start, len)
            .await?;
        Ok(match self.dtype {
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
                .collect(),
            _ => bytemuck::pod_collect_to_vec(&bytes),
        })
    }

    /// Copies the values to the host as u32.
    pub async fn to_vec_u32(&self) -> Result<Vec<u32>> {
        let bytes = self
            .gpu()
            .read_buffer(self.buffer(), self.offset, self.byte_len())
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Blocking `to_vec_f32` for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self) -> Result<Vec<f32>> {
        crate::gpu::block_on(self.to_vec_f32())
    }

    /// Blocking `to_vec_u32` for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_u32(&self) -> Result<Vec<u32>> {
        crate::gpu::block_on(self.to_vec_u32())
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Element count.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Size of the data in bytes (whole 32-bit words).
    pub fn byte_len(&self) -> u64 {
        storage_bytes(self.numel(), self.dtype)
    }

    /// The GPU owning the storage.
    pub fn gpu(&self) -> &Gpu {
        &self.storage.gpu
    }

    /// The wgpu buffer (possibly larger than `byte_len`: pooled size class).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage
            .buffer
            .as_ref()
            .expect("storage buffer present until drop")
    }

    /// Where the tensor starts in `buffer()`, in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether two tensors share storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Checks the dtype, naming the op and operand on mismatch.
    pub fn expect_dtype(&self, op: &'static str, what: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                what,
                expected: dtype,
                found: self.dtype,
            });
        }
        Ok(())
    }
}
