// Subgroup forms of attention.wgsl's attn_fwd, attn_dq and attn_dkv (appended to it), for CPU
// adapters with WG = 8 rows per workgroup inside one subgroup. The plain kernels read each key
// (query) row at a workgroup-uniform address, which Mesa 22's llvmpipe still gathers lane by
// lane. Here the 8 lanes load 8 consecutive rows at once, one each, and subgroupBroadcast hands
// row t of the block to every lane: a block of 8 rows costs the loads of one. Masks, clamping
// and the order of the online softmax are the plain kernels' (per block of 8 instead of 4).
// The 8-row sums stay written out: as helper functions taking the row arrays by value they ran
// 4x slower on llvmpipe.

// Row `first + lane`, clamped below `end`, as the vec4 index of its start.
fn sg_row(base: u32, first: u32, lane: u32, end: u32) -> u32 {
    return (base + min(first + lane, end - 1u)) * D4;
}

@compute @workgroup_size(WG)
fn attn_fwd_sg(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let qr = query_row(wid, nwg, lid);
    if qr.bh >= params.bh {
        return;
    }
    let bh = qr.bh;
    let i = qr.i;
    let row = qr.row;
    let n = qr.n;
    let n_max = qr.n_max;
    var q: array<vec4<f32>, D4>;
    for (var d = 0u; d < D4; d++) {
        q[d] = q_r[row * D4 + d] * params.scale;
    }
    var acc: array<vec4<f32>, D4>;
    var m = NEG;
    var l = 0.0;
    let kb = bh * params.tk_cap;
    for (var j = 0u; j < n_max; j += 8u) {
        let r = sg_row(kb, j, lane, n_max);
        var kk: array<vec4<f32>, D4>;
        var vv: array<vec4<f32>, D4>;
        for (var d = 0u; d < D4; d++) {
            kk[d] = k_r[r + d];
            vv[d] = v_r[r + d];
        }
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) {
            let kd = kk[d];
            let qd = q[d];
            s0 += vec4<f32>(dot(qd, subgroupBroadcast(kd, 0u)), dot(qd, subgroupBroadcast(kd, 1u)), dot(qd, subgroupBroadcast(kd, 2u)), dot(qd, subgroupBroadcast(kd, 3u)));
            s1 += vec4<f32>(dot(qd, subgroupBroadcast(kd, 4u)), dot(qd, subgroupBroadcast(kd, 5u)), dot(qd, subgroupBroadcast(kd, 6u)), dot(qd, subgroupBroadcast(kd, 7u)));
        }
        s0 = select(vec4<f32>(NEG), s0, vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(n));
        s1 = select(vec4<f32>(NEG), s1, vec4<u32>(j + 4u, j + 5u, j + 6u, j + 7u) < vec4<u32>(n));
        let s = max(s0, s1);
        let mx = max(m, max(max(s.x, s.y), max(s.z, s.w)));
        let c = exp(m - mx);
        let p0 = exp(s0 - vec4<f32>(mx));
        let p1 = exp(s1 - vec4<f32>(mx));
        let ps = p0 + p1;
        l = l * c + (ps.x + ps.y) + (ps.z + ps.w);
        for (var d = 0u; d < D4; d++) {
            let vd = vv[d];
            acc[d] = acc[d] * c + p0.x * subgroupBroadcast(vd, 0u)
                + p0.y * subgroupBroadcast(vd, 1u)
                + p0.z * subgroupBroadcast(vd, 2u)
                + p0.w * subgroupBroadcast(vd, 3u)
                + p1.x * subgroupBroadcast(vd, 4u)
                + p1.y * subgroupBroadcast(vd, 5u)
                + p1.z * subgroupBroadcast(vd, 6u)
                + p1.w * subgroupBroadcast(vd, 7u);
        }
        m = mx;
    }
    if i < params.tq {
        let inv = 1.0 / l;
        for (var d = 0u; d < D4; d++) {
            out_w[row * D4 + d] = acc[d] * inv;
        }
        row_w[row] = m + log(l);
    }
}

@compute @workgroup_size(WG)
fn attn_dq_sg(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let qr = query_row(wid, nwg, lid);
    if qr.bh >= params.bh {
        return;
    }
    let bh = qr.bh;
    let i = qr.i;
    let row = qr.row;
    let n = qr.n;
    let n_max = qr.n_max;
    var q: array<vec4<f32>, D4>;
    var g: array<vec4<f32>, D4>;
    var dvec = 0.0;
    for (var d = 0u; d < D4; d++) {
        q[d] = q_r[row * D4 + d] * params.scale;
        g[d] = do_r[row * D4 + d];
        dvec += dot(g[d], o_r[row * D4 + d]);
    }
    let lse = lse_r[row];
    var acc: array<vec4<f32>, D4>;
    let kb = bh * params.tk_cap;
    for (var j = 0u; j < n_max; j += 8u) {
        let r = sg_row(kb, j, lane, n_max);
        var kk: array<vec4<f32>, D4>;
        var vv: array<vec4<f32>, D4>;
        for (var d = 0u; d < D4; d++) {
            kk[d] = k_r[r + d];
            vv[d] = v_r[r + d];
        }
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var dp0 = vec4<f32>(0.0);
        var dp1 = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) {
            let kd = kk[d];
            let vd = vv[d];
            let qd = q[d];
            let gd = g[d];
            s0 += vec4<f32>(dot(qd, subgroupBroadcast(kd, 0u)), dot(qd, subgroupBroadcast(kd, 1u)), dot(qd, subgroupBroadcast(kd, 2u)), dot(qd, subgroupBroadcast(kd, 3u)));
            s1 += vec4<f32>(dot(qd, subgroupBroadcast(kd, 4u)), dot(qd, subgroupBroadcast(kd, 5u)), dot(qd, subgroupBroadcast(kd, 6u)), dot(qd, subgroupBroadcast(kd, 7u)));
            dp0 += vec4<f32>(dot(gd, subgroupBroadcast(vd, 0u)), dot(gd, subgroupBroadcast(vd, 1u)), dot(gd, subgroupBroadcast(vd, 2u)), dot(gd, subgroupBroadcast(vd, 3u)));
            dp1 += vec4<f32>(dot(gd, subgroupBroadcast(vd, 4u)), dot(gd, subgroupBroadcast(vd, 5u)), dot(gd, subgroupBroadcast(vd, 6u)), dot(gd, subgroupBroadcast(vd, 7u)));
        }
        let p0 = select(vec4<f32>(0.0), exp(s0 - vec4<f32>(lse)), vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(n));
        let p1 = select(vec4<f32>(0.0), exp(s1 - vec4<f32>(lse)), vec4<u32>(j + 4u, j + 5u, j + 6u, j + 7u) < vec4<u32>(n));
        let ds0 = p0 * (dp0 - vec4<f32>(dvec));
        let ds1 = p1 * (dp1 - vec4<f32>(dvec));
        for (var d = 0u; d < D4; d++) {
            let kd = kk[d];
            acc[d] += ds0.x * subgroupBroadcast(kd, 0u)
                + ds0.y * subgroupBroadcast(kd, 1u)
                + ds0.z * subgroupBroadcast(kd, 2u)
                + ds0.w * subgroupBroadcast(kd, 3u)
                + ds1.x * subgroupBroadcast(kd, 4u)
                + ds1.y * subgroupBroadcast(kd, 5u)
                + ds1.z * subgroupBroadcast(kd, 6u)
                + ds1.w * subgroupBroadcast(kd, 7u);
        }
    }
    if i < params.tq {
        for (var d = 0u; d < D4; d++) {
            out_w[row * D4 + d] = acc[d] * params.scale;
        }
        row_w[row] = dvec;
    }
}

@compute @workgroup_size(WG)
fn attn_dkv_sg(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tile = tile_of(wid, nwg, params.tk_cap);
    let bh = tile.x;
    if bh >= params.bh {
        return;
    }
    let j = tile.y + lid;
    let jc = min(j, params.kv_len - 1u);
    let live = j < params.kv_len;
    let i_first = first_query(jc);
    var i_start = params.tq;
    if tile.y < params.kv_len {
        i_start = min(first_query(tile.y), params.tq);
    }
    let kr = (bh * params.tk_cap + jc) * D4;
    var k: array<vec4<f32>, D4>;
    var v: array<vec4<f32>, D4>;
    for (var d = 0u; d < D4; d++) {
        k[d] = k_r[kr + d] * params.scale;
        v[d] = v_r[kr + d];
    }
    var dk: array<vec4<f32>, D4>;
    var dv: array<vec4<f32>, D4>;
    let qb = bh * params.tq;
    for (var i0 = i_start; i0 < params.tq; i0 += 8u) {
        let mine = min(i0 + lane, params.tq - 1u);
        let r = (qb + mine) * D4;
        var qq: array<vec4<f32>, D4>;
        var gg: array<vec4<f32>, D4>;
        for (var d = 0u; d < D4; d++) {
            qq[d] = q_r[r + d];
            gg[d] = do_r[r + d];
        }
        let lse_l = lse_r[qb + mine];
        let dvec_l = dvec_r[qb + mine];
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var dp0 = vec4<f32>(0.0);
        var dp1 = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) {
            let qd = qq[d];
            let gd = gg[d];
            let kd = k[d];
            let vd = v[d];
            s0 += vec4<f32>(dot(subgroupBroadcast(qd, 0u), kd), dot(subgroupBroadcast(qd, 1u), kd), dot(subgroupBroadcast(qd, 2u), kd), dot(subgroupBroadcast(qd, 3u), kd));
            s1 += vec4<f32>(dot(subgroupBroadcast(qd, 4u), kd), dot(subgroupBroadcast(qd, 5u), kd), dot(subgroupBroadcast(qd, 6u), kd), dot(subgroupBroadcast(qd, 7u), kd));
            dp0 += vec4<f32>(dot(subgroupBroadcast(gd, 0u), vd), dot(subgroupBroadcast(gd, 1u), vd), dot(subgroupBroadcast(gd, 2u), vd), dot(subgroupBroadcast(gd, 3u), vd));
            dp1 += vec4<f32>(dot(subgroupBroadcast(gd, 4u), vd), dot(subgroupBroadcast(gd, 5u), vd), dot(subgroupBroadcast(gd, 6u), vd), dot(subgroupBroadcast(gd, 7u), vd));
        }
        let lse0 = vec4<f32>(subgroupBroadcast(lse_l, 0u), subgroupBroadcast(lse_l, 1u), subgroupBroadcast(lse_l, 2u), subgroupBroadcast(lse_l, 3u));
        let lse1 = vec4<f32>(subgroupBroadcast(lse_l, 4u), subgroupBroadcast(lse_l, 5u), subgroupBroadcast(lse_l, 6u), subgroupBroadcast(lse_l, 7u));
        let dvec0 = vec4<f32>(subgroupBroadcast(dvec_l, 0u), subgroupBroadcast(dvec_l, 1u), subgroupBroadcast(dvec_l, 2u), subgroupBroadcast(dvec_l, 3u));
        let dvec1 = vec4<f32>(subgroupBroadcast(dvec_l, 4u), subgroupBroadcast(dvec_l, 5u), subgroupBroadcast(dvec_l, 6u), subgroupBroadcast(dvec_l, 7u));
        let i_lo = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
        let i_hi = i_lo + vec4<u32>(4u);
        let seen0 = (i_lo < vec4<u32>(params.tq)) & (i_lo >= vec4<u32>(i_first)) & vec4<bool>(live);
        let seen1 = (i_hi < vec4<u32>(params.tq)) & (i_hi >= vec4<u32>(i_first)) & vec4<bool>(live);
        let p0 = select(vec4<f32>(0.0), exp(s0 - lse0), seen0);
        let p1 = select(vec4<f32>(0.0), exp(s1 - lse1), seen1);
        let ds0 = p0 * (dp0 - dvec0);
        let ds1 = p1 * (dp1 - dvec1);
        for (var d = 0u; d < D4; d++) {
            let qd = qq[d];
            let gd = gg[d];
            dv[d] += p0.x * subgroupBroadcast(gd, 0u)
                + p0.y * subgroupBroadcast(gd, 1u)
                + p0.z * subgroupBroadcast(gd, 2u)
                + p0.w * subgroupBroadcast(gd, 3u)
                + p1.x * subgroupBroadcast(gd, 4u)
                + p1.y * subgroupBroadcast(gd, 5u)
                + p1.z * subgroupBroadcast(gd, 6u)
                + p1.w * subgroupBroadcast(gd, 7u);
            dk[d] += ds0.x * subgroupBroadcast(qd, 0u)
                + ds0.y * subgroupBroadcast(qd, 1u)
                + ds0.z * subgroupBroadcast(qd, 2u)
                + ds0.w * subgroupBroadcast(qd, 3u)
                + ds1.x * subgroupBroadcast(qd, 4u)
                + ds1.y * subgroupBroadcast(qd, 5u)
                + ds1.z * subgroupBroadcast(qd, 6u)
                + ds1.w * subgroupBroadcast(qd, 7u);
        }
    }
    if j < params.tk_cap {
        let w = (bh * params.tk_cap + j) * D4;
        for (var d = 0u; d < D4; d++) {
            out_w[w + d] = dk[d] * params.scale;
            dv_w[w + d] = dv[d];
        }
    }
}
