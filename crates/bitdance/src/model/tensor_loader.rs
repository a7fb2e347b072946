//! Loading parameters tensor by tensor from files the caller reads by range: a plan of one read
//! per tensor (or per run of rows of a large one) made from the files' headers, then one upload
//! per read. The native path reads ranges of bytes in memory; the web page reads them from a
//! Blob, so a multi-GB model or checkpoint never sits whole in the wasm heap. Generation,
//! fine-tuning and resuming a run all load through it.

use std::ops::Range;

use super::{ParamSpec, ParamStore};
use crate::io::WeightFile;
use crate::{Error, Gpu, Result};

/// Most bytes of a file read at once: a larger tensor (the B models' class table is 98 MB at
/// f16) is read, widened and uploaded a run of rows at a time, so the host holds a few times
/// this, not a few times the tensor.
pub const PIECE_BYTES: u64 = 8 << 20;

/// Which file a tensor is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadFile {
    /// The model file (AR model and head, and the autoencoder when it holds one), or the
    /// checkpoint.
    Model,
    /// The separate autoencoder file.
    Vae,
}

/// What the loader needs next: its file, the tensor's name there, and the byte range in the
/// file (the whole tensor, or a run of its rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRead {
    /// The file to read from.
    pub file: LoadFile,
    /// The tensor's name in that file.
    pub name: String,
    /// Its bytes in the file (offsets from the file's start).
    pub range: Range<u64>,
}

/// A class table grown while it loads, a run of rows at a time: the file's `classes` rows,
/// then `added` new rows (each the mean of those rows, summed in f64 in row order), then the
/// file's last row (the null class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGrowth {
    /// Class rows in the file (its null row follows them).
    pub classes: usize,
    /// New rows inserted before the null row.
    pub added: usize,
}

/// One tensor to load: the file and name it is read from, what it becomes in the store (its
/// spec: name and shape), whether it is held in 16 bits, and whether it grows.
pub struct LoadItem {
    /// The file it is read from.
    pub file: LoadFile,
    /// Its name in that file.
    pub name_in_file: String,
    /// Its name and shape in the store (the file's shape, grown by `grow`).
    pub spec: ParamSpec,
    /// Held in 16 bits where its kernels read it so (see `ParamStore::upload`).
    pub half: bool,
    /// New rows the tensor gains as it loads.
    pub grow: Option<RowGrowth>,
}

impl LoadItem {
    /// Tensor `spec.name` of `file`, as stored, at 32 bits.
    pub fn named(file: LoadFile, spec: ParamSpec) -> Self {
        LoadItem {
            file,
            name_in_file: spec.name.clone(),
            spec,
            half: false,
            grow: None,
        }
    }
}

/// One upload of the plan: the item, which of its file rows, whether the tensor is read in
/// pieces (then the first allocates it).
struct Step {
    read: TensorRead,
    item: usize,
    rows: Range<usize>,
    pieced: bool,
}

/// Parameters being loaded: `next_read` names the bytes to fetch, `upload` takes them, `finish`
/// hands the store over.
pub struct TensorLoader<'f> {
    gpu: Gpu,
    model: &'f WeightFile<'f>,
    vae: Option<&'f WeightFile<'f>>,
    items: Vec<LoadItem>,
    steps: Vec<Step>,
    next: usize,
    store: ParamStore,
    /// The column sums (each value over the class count) of the table growing now.
    sums: Vec<f64>,
    bytes_done: u64,
    bytes_total: u64,
}

impl<'f> TensorLoader<'f> {
    /// Plans the reads of `items` from `model` (and `vae`, for items of `LoadFile::Vae`),
    /// tensors over `piece_bytes` a run of rows at a time; an error names a tensor an item asks
    /// for that its file lacks.
    pub fn new(
        gpu: &Gpu,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        items: Vec<LoadItem>,
        piece_bytes: u64,
    ) -> Result<Self> {
        let file_of = |which: LoadFile| match which {
            LoadFile::Model => Ok(model),
            LoadFile::Vae => vae.ok_or_else(|| {
                Error::Invalid("a tensor of the autoencoder file was asked for without it".into())
            }),
        };
        let mut steps = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let file = file_of(item.file)?;
            steps.extend(plan(file, item, index, piece_bytes)?);
        }
        let bytes_total = steps
            .iter()
            .map(|s| s.read.range.end - s.read.range.start)
            .sum();
        Ok(TensorLoader {
            gpu: gpu.clone(),
            model,
            vae,
            items,
            steps,
            next: 0,
            store: ParamStore::new(),
            sums: Vec::new(),
            bytes_done: 0,
            bytes_total,
        })
    }

    /// The bytes to read next (a tensor, or a run of its rows), `None` when all are uploaded.
    pub fn next_read(&self) -> Option<&TensorRead> {
        self.steps.get(self.next).map(|s| &s.read)
    }

    fn file(&self, which: LoadFile) -> &'f WeightFile<'f> {
        match which {
            LoadFile::Model => self.model,
            LoadFile::Vae => self.vae.unwrap_or(self.model),
        }
    }

    /// Uploads the bytes `next_read` named (widened, checked for non-finite values, transformed
    /// when the item says so, then held at its precision) and moves to the next read.
    pub fn upload(&mut self, bytes: &[u8]) -> Result<()> {
        let step = self
            .steps
            .get(self.next)
            .ok_or_else(|| Error::Invalid("every tensor is already loaded".into()))?;
        let (index, rows, pieced) = (step.item, step.rows.clone(), step.pieced);
        let read = step.read.clone();
        let file = self.file(read.file);
        let data = file.decode_rows_f32(&read.name, rows.clone(), bytes)?;
        let file_rows = file.shape(&read.name)?.first().copied().unwrap_or(1);
        let limit = self.gpu.limits().max_storage_buffer_binding_size;
        let (spec, half, grow) = {
            let item = &self.items[index];
            (item.spec.clone(), item.half, item.grow)
        };
        if rows.start == 0 && (pieced || grow.is_some()) {
            self.store.allocate(&self.gpu, &spec, limit, half)?;
        }
        match grow {
            Some(grow) => {
                if rows.start == 0 {
                    self.sums.clear();
                }
                self.grow_rows(&spec.name, grow, rows.clone(), &data)?;
                if rows.end == file_rows {
                    let mean: Vec<f32> = self.sums.iter().map(|m| *m as f32).collect();
                    let new_rows: Vec<f32> = (0..grow.added).flat_map(|_| mean.clone()).collect();
                    self.store.write_rows(&spec.name, grow.classes, &new_rows)?;
                }
            }
            None if pieced => self.store.write_rows(&spec.name, rows.start, &data)?,
            None => self.store.upload(&self.gpu, &spec, &data, limit, half)?,
        }
        self.bytes_done += read.range.end - read.range.start;
        self.next += 1;
        Ok(())
    }

    /// Writes file rows `rows` (`data`) of growing table `name`: class rows in place (their
    /// values summed for the mean), the null row after the new ones.
    fn grow_rows(
        &mut self,
        name: &str,
        grow: RowGrowth,
        rows: Range<usize>,
        data: &[f32],
    ) -> Result<()> {
        let width = data.len() / rows.len().max(1);
        if self.sums.is_empty() {
            self.sums = vec![0.0; width];
        }
        let class_end = grow.classes.clamp(rows.start, rows.end);
        let class_part = &data[..(class_end - rows.start) * width];
        for row in class_part.chunks(width) {
            for (m, v) in self.sums.iter_mut().zip(row) {
                *m += *v as f64 / grow.classes.max(1) as f64;
            }
        }
        if !class_part.is_empty() {
            self.store.write_rows(name, rows.start, class_part)?;
        }
        let rest = &data[class_part.len()..];
        if !rest.is_empty() {
            // The null row (the file's row `classes`) moves past the new rows.
            self.store
                .write_rows(name, grow.classes + grow.added, rest)?;
        }
        Ok(())
    }

    /// Bytes uploaded so far and in all, for a progress bar.
    pub fn progress(&self) -> (u64, u64) {
        (self.bytes_done, self.bytes_total)
    }

    /// The loaded parameters under their specs' names; an error when tensors are still to read.
    pub fn finish(self) -> Result<ParamStore> {
        if let Some(step) = self.steps.get(self.next) {
            return Err(Error::Invalid(format!(
                "the model is not loaded: {} of {} tensors remain, next '{}'",
                self.steps.len() - self.next,
                self.steps.len(),
                step.read.name
            )));
        }
        Ok(self.store)
    }

    /// Reads and uploads every tensor from files whose bytes are in memory (the native path).
    pub fn read_all_in_memory(&mut self) -> Result<()> {
        while let Some(read) = self.next_read() {
            let bytes = self.file(read.file).bytes(read.range.clone())?;
            self.upload(bytes)?;
        }
        Ok(())
    }

    /// Loads every tensor from files whose bytes are in memory and hands the store over.
    pub fn load_in_memory(mut self) -> Result<ParamStore> {
        self.read_all_in_memory()?;
        self.finish()
    }
}

/// The steps of one item: its tensor read whole, or in runs of rows of at most `piece_bytes`
/// (tensors whose rows hold an even number of values, so that 16-bit rows end on 4-byte
/// boundaries).
fn plan(
    file: &WeightFile<'_>,
    item: &LoadItem,
    index: usize,
    piece_bytes: u64,
) -> Result<Vec<Step>> {
    let name = &item.name_in_file;
    let whole = file.data_range(name)?;
    let shape = file.shape(name)?;
    let rows = shape.first().copied().unwrap_or(1);
    let row_values: usize = shape.iter().skip(1).product();
    let row_bytes = (whole.end - whole.start) / rows.max(1) as u64;
    let per_piece = (piece_bytes / row_bytes.max(1)).max(1) as usize;
    let pieced = shape.len() >= 2 && row_values.is_multiple_of(2) && per_piece < rows;
    let pieces: Vec<Range<usize>> = match pieced {
        true => (0..rows)
            .step_by(per_piece)
            .map(|r| r..(r + per_piece).min(rows))
            .collect(),
        false => std::iter::once(0..rows).collect(),
    };
    pieces
        .into_iter()
        .map(|part| {
            Ok(Step {
                read: TensorRead {
                    file: item.file,
                    range: match pieced {
                        true => file.row_range(name, part.clone())?,
                        false => whole.clone(),
                    },
                    name: name.clone(),
                },
                item: index,
                rows: part,
                pieced,
            })
        })
        .collect()
}
