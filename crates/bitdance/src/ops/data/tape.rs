//! Data movement on the autograd tape: embeddings, slicing, splitting, tiling, concatenation,
//! reshapes.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::{Result, Tensor};

impl Tape {
    /// Rows of `table` [V, D] picked by the u32 indices `idx` [N] (a constant) -> [N, D].
    pub fn embedding(&self, table: Var, idx: &Tensor) -> Result<Var> {
        let tv = self.value(table);
        let vocab = tv.shape()[0];
        let idx = idx.clone();
        let y = ops::embedding(&tv, &idx)?;
        Ok(self.push(
            y,
            &[table],
            Box::new(move |dy, _| Ok(vec![Some(ops::embedding_backward(&idx, dy, vocab)?)])),
        ))
    }

    /// `embedding` of a table held as row chunks `parts` ([V_i, D] each, in row order, as a
    /// table over one storage binding is held): each chunk gathers the rows it holds (zeros
    /// for the others) and the gathers add up; each chunk's gradient is dy scattered onto its
    /// own rows.
    pub fn embedding_chunks(&self, parts: &[Var], idx: &Tensor) -> Result<Var> {
        if let [table] = parts {
            return self.embedding(*table, idx);
        }
        let mut ranges = Vec::with_capacity(parts.len());
        let mut sum: Option<Tensor> = None;
        let mut first = 0;
        for &part in parts {
            let rows = self.shape(part).first().copied().unwrap_or(0);
            let got = ops::embedding_rows(&self.value(part), idx, first)?;
            sum = Some(match sum {
                None => got,
                Some(acc) => ops::add(&acc, &got)?,
            });
            ranges.push((first, rows));
            first += rows;
        }
        let y = sum.ok_or_else(|| crate::Error::Invalid("embedding: no table chunk".into()))?;
        let idx = idx.clone();
        Ok(self.push(
            y,
            parts,
            Box::new(move |dy, _| {
                ranges
                    .iter()
                    .map(|&(first, rows)| {
                        Ok(Some(ops::embedding_backward_rows(&idx, dy, first, rows)?))
                    })
                    .collect()
            }),
        ))
    }

    /// `x[.., start..start+len, ..]` along `axis`.
    pub fn slice(&self, x: Var, axis: usize, start: usize, len: usize) -> Result<Var> {
        let shape = self.shape(x);
        let y = ops::slice(&self.value(x), axis, start, len)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::slice_backward(dy, &shape, axis, start)?)])),
        ))
    }

    /// Consecutive pieces of `x` along `axis` with lengths `sizes` (summing to that axis).
    pub fn split(&self, x: Var, axis: usize, sizes: &[usize]) -> Result<Vec<Var>> {
        let xv = self.value(x);
        let total: usize = sizes.iter().sum();
        if xv.shape().get(axis) != Some(&total) {
            return Err(crate::Error::Shape {
                op: "split",
                detail: format!(
                    "sizes {sizes:?} do not cover axis {axis} of {:?}",
                    xv.shape()
                ),
            });
        }
        let mut start = 0;
        let mut values = Vec::with_capacity(sizes.len());
        for &len in sizes {
            values.push(ops::slice(&xv, axis, start, len)?);
            start += len;
        }
        Ok(self.push_multi(
            values,
            &[x],
            Box::new(move |dys, _| {
                let refs: Vec<&Tensor> = dys.iter().collect();
                Ok(vec![Some(ops::concat(&refs, axis)?)])
            }),
        ))
    }

    /// `times` copies of x stacked along axis 0 (`concat(&[x; times], 0)` in one dispatch; the
    /// gradient sums the copies).
    pub fn tile(&self, x: Var, times: usize) -> Result<Var> {
        let y = ops::tile(&self.value(x), times)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::tile_backward(dy, times)?)])),
        ))
    }

    /// Concatenation along `axis`.
    pub fn concat(&self, xs: &[Var], axis: usize) -> Result<Var> {
        let values: Vec<Tensor> = xs.iter().map(|&v| self.value(v)).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let y = ops::concat(&refs, axis)?;
        let lens: Vec<usize> = values.iter().map(|v| v.shape()[axis]).collect();
        Ok(self.push(
            y,
            xs,
            Box::new(move |dy, need| {
                let mut start = 0;
                let mut grads = Vec::new();
                for (len, n) in lens.iter().zip(need) {
                    grads.push(if *n {
                        Some(ops::slice(dy, axis, start, *len)?)
                    } else {
                        None
                    });
                    start += len;
                }
                Ok(grads)
            }),
        ))
    }

    /// The same values seen with another shape.
    pub fn reshape(&self, x: Var, shape: &[usize]) -> Result<Var> {
        let old = self.shape(x);
        let y = self.value(x).reshape(shape)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(dy.reshape(&old)?)])),
        ))
    }
}
