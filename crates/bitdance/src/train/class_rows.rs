//! The class rows a LoRA or class-table run trains: the rows of the classes it trains and the
//! null row, as a small table of their own (gradients, AdamW moments and EMA for those rows
//! alone; the rest of a B model's 1001-row, 197 MB table stays as it is), joined into the full
//! table wherever the model leaves the trainer (checkpoints, exported models, sampling).

use crate::model::{class_rows, HostTensor, ParamStore};
use crate::{ops, Error, Result, Tensor};

use super::CLASS_TABLE;

/// Metadata key of the trained class rows (JSON list of class ids) in checkpoints.
pub const CLASS_ROWS_KEY: &str = "bitdance.class_rows";

/// The trained rows of the class table and the full table they belong to.
#[derive(Clone)]
pub struct ClassRows {
    /// Class ids of the trained rows, ascending, the null class (`num_classes`) last.
    pub ids: Vec<u32>,
    /// The full table (whole or in row chunks) under `CLASS_TABLE`; its rows at `ids` are
    /// stale: the trained rows replace them.
    base: ParamStore,
}

impl ClassRows {
    /// The rows of `classes` and of the null class `null` (deduplicated, ascending) of the
    /// table `base` holds; a class past the table is refused by number.
    pub fn new(classes: &[u32], null: u32, base: ParamStore) -> Result<Self> {
        let mut ids: Vec<u32> = classes.to_vec();
        if let Some(bad) = ids.iter().find(|&&k| k >= null) {
            return Err(Error::Invalid(format!(
                "class {bad} is not a class of the model ({null} classes)"
            )));
        }
        ids.push(null);
        ids.sort_unstable();
        ids.dedup();
        base.shape(CLASS_TABLE)?;
        Ok(Self { ids, base })
    }

    /// The trained rows [k, W] as the base table holds them (f32).
    pub fn gather(&self) -> Result<Tensor> {
        class_rows(&self.base.get_chunks(CLASS_TABLE)?, &self.ids)
    }

    /// Positions of `classes` among the trained rows (the indices into the small table), or an
    /// error naming a class the run does not train.
    pub fn positions(&self, classes: &[u32]) -> Result<Vec<u32>> {
        classes
            .iter()
            .map(|k| {
                self.ids.binary_search(k).map(|p| p as u32).map_err(|_| {
                    Error::Invalid(format!(
                        "class {k} is not among the classes this run trains ({:?})",
                        self.ids
                    ))
                })
            })
            .collect()
    }

    /// The full table's row chunks on the GPU with the trained `rows` [k, W] in place: each
    /// chunk keeps its other rows and takes the trained ones exactly (chunk - chunk·mask +
    /// scatter(rows)).
    pub fn joined(&self, rows: &Tensor) -> Result<Vec<Tensor>> {
        let chunks = self.base.get_chunks(CLASS_TABLE)?;
        let gpu = rows.gpu();
        let idx = Tensor::from_u32(gpu, &[self.ids.len()], &self.ids)?;
        let ones = Tensor::from_f32(gpu, rows.shape(), &vec![1.0; rows.numel()])?;
        let mut first = 0;
        let mut out = Vec::with_capacity(chunks.len());
        for part in chunks {
            let n = part.shape()[0];
            let part = ops::to_f32(part)?;
            let mask = ops::embedding_backward_rows(&idx, &ones, first, n)?;
            let placed = ops::embedding_backward_rows(&idx, rows, first, n)?;
            let kept = ops::sub(&part, &ops::mul(&part, &mask)?)?;
            out.push(ops::add(&kept, &placed)?);
            first += n;
        }
        Ok(out)
    }

    /// `host` with each of `names` (the trained rows [k, W] read back) replaced by the full
    /// table with those rows in place, read from the base.
    pub async fn join_host(&self, host: &mut [HostTensor], names: &[String]) -> Result<()> {
        for (name, shape, data) in host.iter_mut() {
            if names.contains(name) {
                (*shape, *data) = self.full_table(name, shape, data).await?;
            }
        }
        Ok(())
    }

    /// Checks that `data` of `shape` (tensor `name`, for errors) holds the trained rows [k, W].
    pub fn full_table_check(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        let width = self.base.shape(CLASS_TABLE)?[1];
        if shape != [self.ids.len(), width] || data.len() != self.ids.len() * width {
            return Err(Error::Invalid(format!(
                "'{name}' is {shape:?}; the trained class rows are [{}, {width}]",
                self.ids.len()
            )));
        }
        Ok(())
    }

    /// The full table's shape [classes + 1, W].
    pub fn full_shape(&self) -> Result<Vec<usize>> {
        self.base.shape(CLASS_TABLE)
    }

    /// The full table's shape and values (read from the base) with the trained rows `data` of
    /// `shape` [k, W] (tensor `name`, for errors) in place.
    pub async fn full_table(
        &self,
        name: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        self.full_table_check(name, shape, data)?;
        let full = self.base.shape(CLASS_TABLE)?;
        let width = full[1];
        let mut table = Vec::with_capacity(full[0] * width);
        for part in self.base.get_chunks(CLASS_TABLE)? {
            table.extend(part.to_vec_f32().await?);
        }
        for (row, &id) in self.ids.iter().enumerate() {
            let at = id as usize * width;
            table[at..at + width].copy_from_slice(&data[row * width..(row + 1) * width]);
        }
        Ok((full, table))
    }

    /// Rows `first..first + count` of the full table (read from the base, across its row
    /// chunks) with the trained rows `trained` ([k, W], all of them) in place.
    pub async fn full_rows(&self, first: usize, count: usize, trained: &[f32]) -> Result<Vec<f32>> {
        let width = self.full_shape()?[1];
        let mut out = Vec::with_capacity(count * width);
        let mut at = 0; // first row of the current chunk
        for part in self.base.get_chunks(CLASS_TABLE)? {
            let n = part.shape()[0];
            let (lo, hi) = (first.max(at), (first + count).min(at + n));
            if lo < hi {
                out.extend(part.rows_to_vec_f32(lo - at, hi - lo).await?);
            }
            at += n;
        }
        for (row, &id) in self.ids.iter().enumerate() {
            let id = id as usize;
            if (first..first + count).contains(&id) {
                let at = (id - first) * width;
                out[at..at + width].copy_from_slice(&trained[row * width..(row + 1) * width]);
            }
        }
        Ok(out)
    }
}
