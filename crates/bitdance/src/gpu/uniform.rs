//! Kernel uniforms: `#[repr(C)]` plain-old-data structs declared once, in Rust, with
//! `uniform!`; the WGSL struct the shader reads is generated from the same declaration and
//! prepended to the shader's source, so the two cannot drift apart. The binding contract test
//! (`ops/contract.rs`) still compares names, offsets and size with what naga reflects.

/// A kernel's uniform block (binding 0): plain old data with its fields' names and offsets.
pub trait Uniform: bytemuck::Pod {
    /// (name, byte offset) of every field, in declaration order.
    const FIELDS: &'static [(&'static str, usize)];
    /// The same struct in WGSL (`struct Params { n: u32, ... }`), prepended to its shaders.
    const WGSL: &'static str;
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
/// `#[repr(C)]` Pod struct with public fields, its `Uniform` field table and its WGSL
/// declaration. Fields are `u32`, `i32`, `f32` or `[[f32; 4]; N]` (`array<vec4<f32>, N>`).
macro_rules! uniform {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[$fmeta])* pub $field: $ty),+
        }

        impl $crate::gpu::Uniform for $name {
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field))),+];
            const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $("    ", stringify!($field), ": ", wgsl_type!($ty), ",\n",)+
                "}\n"
            );
        }
    };
}

/// The WGSL spelling of a `uniform!` field type.
macro_rules! wgsl_type {
    (u32) => {
        "u32"
    };
    (i32) => {
        "i32"
    };
    (f32) => {
        "f32"
    };
    ([[f32; 4]; $n:literal]) => {
        concat!("array<vec4<f32>, ", $n, ">")
    };
}
