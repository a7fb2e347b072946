//! GPU ops, one folder per kernel family: launchers (forward and backward) over its WGSL entry
//! points, CPU f64 references and conformance checks side by side.

/// Declares one `const NAME: Kernel` per entry point of `shader`, reading the uniform `Params`
/// (binding 0) and storage bindings 1.. with the given access (`rw`, `r`, or `skip` for one the
/// entry point leaves out), and the list `LIST` of them that the binding contract test
/// (`contract.rs`) checks against the WGSL:
/// `kernels! { LIST = SHADER, Params; NAME = "entry", [rw, r, r]; ... }`.
macro_rules! kernels {
    ($list:ident = $shader:expr, $uniform:ty;
     $($name:ident = $entry:literal, [$($access:ident),* $(,)?];)+) => {
        $(
            const $name: $crate::gpu::Kernel = $crate::gpu::Kernel {
                shader: &$shader,
                entry: $entry,
                bindings: &[$(access!($access)),*],
                uniform: $crate::gpu::UniformLayout::of::<$uniform>(),
            };
        )+
        /// The kernels declared in this file for this shader.
        #[cfg(test)]
        pub(crate) const $list: &[$crate::gpu::Kernel] = &[$($name),+];
    };
}

/// The `Access` of a binding in `kernels!`: `rw`, `r` or `skip`.
macro_rules! access {
    (rw) => {
        $crate::gpu::Access::ReadWrite
    };
    (r) => {
        $crate::gpu::Access::Read
    };
    (skip) => {
        $crate::gpu::Access::Skip
    };
}

/// The kernel families, each a folder `ops/<family>/` holding its launchers (`mod.rs` and
/// helpers), its CPU f64 references (`reference.rs`) and its conformance checks (`check.rs`);
/// its WGSL lives in `shaders/`. A family is its `pub mod` line plus its name here: its ops
/// re-exported, its references gathered in `crate::reference`, its checks run by
/// `conformance::run` (each family on its own seed), its shaders and kernels checked.
macro_rules! families {
    ($($family:ident),+ $(,)?) => {
        $(pub use $family::*;)+

        /// Every family's CPU references, re-exported by `crate::reference`.
        pub mod references {
            $(pub use super::$family::reference::*;)+
        }

        /// Every shader of every family, for validation.
        #[cfg(test)]
        pub(crate) fn all_shaders() -> Vec<&'static crate::gpu::Shader> {
            [$($family::SHADERS),+].concat()
        }

        /// Every family's kernel declarations, for the binding contract test.
        #[cfg(test)]
        pub(crate) fn declared_kernels() -> Vec<&'static [crate::gpu::Kernel]> {
            [$($family::KERNELS),+].concat()
        }

        /// Every family's conformance checks, in order.
        pub(crate) fn check_families() -> Vec<crate::conformance::Family> {
            vec![$(crate::conformance::Family {
                name: stringify!($family),
                run: |c| Box::pin($family::check::run(c)),
            }),+]
        }
    };
}

// Declared plainly (not inside the macro) so that rustfmt and every tool sees the files.
pub mod attention;
pub mod conv;
pub mod data;
pub mod elementwise;
pub mod flow;
pub mod group_norm;
pub mod lfq;
pub mod loss;
pub mod matmul;
pub mod modulate;
pub mod norm;
pub mod optim;
pub mod rope;

families! {
    elementwise,
    matmul,
    norm,
    modulate,
    rope,
    attention,
    data,
    loss,
    lfq,
    optim,
    flow,
    conv,
    group_norm,
}

#[cfg(test)]
mod contract;

use crate::gpu::VEC;
use crate::{Error, Result, Tensor};

/// Define sets of a shader written once for both element widths (`VEC` = 1 and 4), as the
/// element-wise, optimizer, data and layout kernels are (validated by naga).
pub const VEC_VARIANTS: &[&[(&str, u32)]] = &[&[(VEC, 1)], &[(VEC, 4)]];

/// A shape error of `op`.
pub(crate) fn shape_err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

/// Checks that each named tensor holds f32 values.
pub(crate) fn check_f32(op: &'static str, ts: &[(&'static str, &Tensor)]) -> Result<()> {
    for (what, t) in ts {
        t.expect_dtype(op, what, crate::DType::F32)?;
    }
    Ok(())
}

/// Checks that the operand `what` (`t`) has the shape of x, naming both on mismatch.
pub(crate) fn check_same(op: &'static str, what: &str, t: &Tensor, x: &Tensor) -> Result<()> {
    if t.shape() != x.shape() {
        return Err(shape_err(
            op,
            format!("{what} {:?} differs from x {:?}", t.shape(), x.shape()),
        ));
    }
    Ok(())
}

/// Checks that two shapes are equal, naming the op on mismatch.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape {
            op,
            detail: format!("operands {:?} and {:?} differ", a.shape(), b.shape()),
        });
    }
    Ok(())
}

/// Copies the first `src.numel()` elements of `src` into the start of `dst` (recorded in order).
pub fn copy_into(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.numel() > dst.numel() {
        return Err(Error::Shape {
            op: "copy_into",
            detail: format!(
                "source {:?} larger than destination {:?}",
                src.shape(),
                dst.shape()
            ),
        });
    }
    src.gpu().copy(
        src.buffer(),
        src.offset(),
        dst.buffer(),
        dst.offset(),
        src.byte_len(),
    );
    Ok(())
}

/// A new tensor holding a copy of `src`.
pub fn duplicate(src: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(src.gpu(), src.shape(), src.dtype())?;
    copy_into(src, &out)?;
    Ok(out)
}
