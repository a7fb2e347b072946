// gather_rows for a 16-bit table (appended to data.wgsl, then data_b16.wgsl or
// data_h16.wgsl, whose load_half reads half e of src); dst receives f32 bits.

// dst[r, k] = the half src[idx[r] - p3, k] as f32, rows of width p1 from a source of p2 rows
// (rows p3..p3 + p2 of a larger table); an index outside yields a zero row. n = rows * p1.
@compute @workgroup_size(256)
fn gather_rows_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let width = params.p1;
    let row = idx[i / width] - params.p3;
    var v = 0.0;
    if row < params.p2 {
        v = load_half(row * width + i % width);
    }
    dst[i] = bitcast<u32>(v);
}
