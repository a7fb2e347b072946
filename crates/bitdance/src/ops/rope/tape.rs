//! 2D RoPE on the autograd tape.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// 2D RoPE of x [B, T, H, Dh] by the angles of `table` (a constant).
    pub fn rope_2d(&self, x: Var, table: &ops::RopeTable) -> Result<Var> {
        let y = table.apply(&self.value(x))?;
        let table = table.clone();
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(table.apply_backward(dy)?)])),
        ))
    }
}
