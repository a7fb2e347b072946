// What the row-wise kernels (rms_norm.wgsl, layer_norm.wgsl, softmax.wgsl, row_sums.wgsl,
// norm_param_grad.wgsl) share: their uniform and how a thread finds its row or item. Each of
// those files is built as norm_common + the file + a reduction file.
//
// Binding convention: outputs first (read_write), then inputs (read). Within one file, names
// that share a binding number belong to different entry points (listed beside each); a
// backward kernel reads the forward's saved values (saved_*) and the output gradient (d*).
// Row kernels run one workgroup of ROW_WG threads per row: row = wid.x + wid.y * nwg.x.
// ROW_WG is a define (8 on CPU adapters, where fewer invocations per barrier win; 64 on GPUs).
// The row reductions sum_a, sum_b, sum_ab and max_a come from the appended reduction file:
// norm_reduce.wgsl (workgroup memory and a barrier) or norm_reduce_sg.wgsl (subgroup
// operations, for CPU adapters whose subgroups hold a whole ROW_WG row).
// Element kernels run 256 threads per workgroup: id = gid.x + gid.y * nwg.x * 256.
// VEC (1 or 4) is the element width of the row kernels: V is f32 or vec4<f32> (vec4s when the
// row length is a multiple of 4: a quarter of the loads); params.d counts V elements, and the
// row kernels walk a row as params.d elements of V, each lane striding by ROW_WG.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/norm/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;

// The builtins that place a row kernel's workgroup. Both are uniform, so the struct is, and
// a row kernel may return early on them before its barriers (browsers check this); its lane,
// local_invocation_index, is a separate parameter.
struct RowPlace {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// The builtins of an element kernel.
struct Item {
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

fn row_id(at: RowPlace) -> u32 {
    return at.wid.x + at.wid.y * at.nwg.x;
}

fn linear_id(at: Item) -> u32 {
    return at.gid.x + at.gid.y * at.nwg.x * 256u;
}

// Column j of the param-grad kernels' thread `id` (params.rows = chunks * d threads) and the
// rows first..end of its chunk of params.aux rows (params.total rows in all).
struct ChunkColumn {
    j: u32,
    first: u32,
    end: u32,
}

fn chunk_column(id: u32) -> ChunkColumn {
    let chunk = id / params.d;
    let first = chunk * params.aux;
    return ChunkColumn(id - chunk * params.d, first, min(params.total, first + params.aux));
}
