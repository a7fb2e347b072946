//! The tokenizer's training loss: reconstruction (L1 + MSE) through the sign quantizer with
//! the straight-through gradient, the commitment loss mse(z, sign(z)) (gradient to z only)
//! and the GFQ group-wise entropy loss (4 groups, temperature 0.01).

use serde::{Deserialize, Serialize};

use crate::autograd::{Tape, Var};
use crate::model::{decoder_forward, encoder_forward, AeConfig, ParamVars};
use crate::{ops, Result};

/// Weights of the tokenizer loss terms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerRecipe {
    /// Weight of mean |x̂ - x|.
    pub l1: f32,
    /// Weight of mean (x̂ - x)².
    pub mse: f32,
    /// Weight of the commitment loss mean (z - sign(z))².
    pub commitment: f32,
    /// Weight of the entropy loss (sample entropy minus codebook entropy).
    pub entropy: f32,
    /// Temperature of the entropy loss's code probabilities.
    pub temperature: f32,
}

impl Default for TokenizerRecipe {
    fn default() -> Self {
        Self {
            l1: 1.0,
            mse: 1.0,
            commitment: 0.25,
            entropy: 0.05,
            temperature: 0.01,
        }
    }
}

/// Groups of the GFQ entropy loss (4 codebooks).
pub const ENTROPY_GROUPS: usize = 4;

/// The loss terms of one batch (scalars [1] on the tape).
pub struct TokenizerLosses {
    /// The weighted sum that is minimised.
    pub total: Var,
    /// Mean |x̂ - x|.
    pub l1: Var,
    /// Mean (x̂ - x)².
    pub mse: Var,
}

/// Records the tokenizer loss of `images` [B, 3, H, W] (a constant on the tape) on `tape`.
pub fn tokenizer_loss(
    tape: &Tape,
    ae: &AeConfig,
    params: &ParamVars,
    images: Var,
    recipe: &TokenizerRecipe,
) -> Result<TokenizerLosses> {
    let z = encoder_forward(tape, ae, params, images)?;
    let s = tape.shape(z);
    let codes = tape.sign_ste(z)?;
    let recon = decoder_forward(tape, ae, params, codes)?;
    let l1 = tape.l1_loss(recon, images)?;
    let mse = tape.mse_loss(recon, images)?;
    // Commitment: the codes as a constant, so the gradient reaches z only.
    let target = tape.constant(ops::sign_quantize(&tape.value(z))?);
    let commit = tape.mse_loss(z, target)?;
    // Entropy over channels-last rows [B * h * w, z].
    let rows = tape.reshape(z, &[s[0], s[1], s[2] * s[3], 1])?;
    let rows = tape.merge_heads(rows)?;
    let rows = tape.reshape(rows, &[s[0] * s[2] * s[3], s[1]])?;
    let entropy = tape.lfq_entropy_loss(rows, ENTROPY_GROUPS, recipe.temperature)?;
    let mut total = tape.scale(l1, recipe.l1)?;
    for (term, w) in [
        (mse, recipe.mse),
        (commit, recipe.commitment),
        (entropy, recipe.entropy),
    ] {
        let weighted = tape.scale(term, w)?;
        total = tape.add(total, weighted)?;
    }
    Ok(TokenizerLosses { total, l1, mse })
}
