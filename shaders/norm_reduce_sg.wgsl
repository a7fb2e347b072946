// Row reductions of the row kernels (appended after norm_common.wgsl and a kernel file) as
// subgroup operations: the ROW_WG threads of a row are one subgroup (CPU adapters: ROW_WG = 8
// lanes of one SIMD vector), so no workgroup memory and no barrier (llvmpipe switches
// coroutines at each barrier). Every lane gets the same, deterministic result. `lid` is
// unused; the signatures match norm_reduce.wgsl.

fn sum_a(lid: u32, v: f32) -> f32 {
    return subgroupAdd(v);
}

fn sum_b(lid: u32, v: f32) -> f32 {
    return subgroupAdd(v);
}

fn sum_ab(lid: u32, u: f32, v: f32) -> vec2<f32> {
    return subgroupAdd(vec2<f32>(u, v));
}

fn max_a(lid: u32, v: f32) -> f32 {
    return subgroupMax(v);
}
