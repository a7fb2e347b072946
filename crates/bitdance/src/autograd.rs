//! Reverse-mode automatic differentiation over GPU ops.
