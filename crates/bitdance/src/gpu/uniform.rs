//! Kernel uniforms: `#[repr(C)]` plain-old-data structs declared with `uniform!`, whose field
//! names and byte offsets the binding contract test (`ops/contract.rs`) compares with the WGSL
//! struct the entry point reads, and `Gpu::dispatch` with the kernel's declaration.

/// A kernel's uniform block (binding 0): plain old data with its fields' names and offsets.
pub trait Uniform: bytemuck::Pod {
    /// (name, byte offset) of every field, in declaration order.
    const FIELDS: &'static [(&'static str, usize)];
}

/// The uniform a kernel declares: size in bytes and (name, byte offset) of each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformLayout {
    /// `size_of` the Rust struct, equal to the WGSL struct's size.
    pub size: usize,
    /// Field names and byte offsets, in order.
    pub fields: &'static [(&'static str, usize)],
}

impl UniformLayout {
    /// The layout of `U`.
    pub const fn of<U: Uniform>() -> Self {
        Self {
            size: std::mem::size_of::<U>(),
            fields: U::FIELDS,
        }
    }
}

/// Declares a kernel uniform: `uniform! { /// doc  struct Params { n: u32, eps: f32 } }` gives a
/// `#[repr(C)]` Pod struct with public fields and its `Uniform` field table. The names and the
/// order must be the WGSL struct's (the contract test checks them, offsets included).
macro_rules! uniform {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[$fmeta])* pub $field: $ty),+
        }

        impl $crate::gpu::Uniform for $name {
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field))),+];
        }
    };
}
