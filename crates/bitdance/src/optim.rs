//! Optimizers: AdamW with parameter groups, gradient clipping and EMA.
