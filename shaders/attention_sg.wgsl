// Subgroup forms of attention.wgsl's attn_fwd, attn_dq and attn_dkv (appended to it), for CPU
// adapters with WG = 8 rows per workgroup inside one subgroup. The plain kernels read each key
// (query) row at a workgroup-uniform address, which Mesa 22's llvmpipe still gathers lane by
// lane. Here the 8 lanes load 8 consecutive rows at once, one each, and subgroupBroadcast hands
// row t of the block to every lane: a block of 8 rows costs the loads of one. Masks, clamping
// and the order of the online softmax are the plain kernels' (per block of 8 instead of 4).
// The helpers below take single vec4s; helpers taking whole row arrays by value ran 4x slower
// on llvmpipe.

// Row `first + lane`, clamped below `end`, as the vec4 index of its start.
fn sg_row(base: u32, first: u32, lane: u32, end: u32) -> u32 {
    return (base + min(first + lane, end - 1u)) * D4;
}

// Eight values, one per lane of the block: lanes 0..3 in lo, 4..7 in hi.
struct Lanes8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// dot(a, lane t's b) for the 8 lanes t.
fn dots8(a: vec4<f32>, b: vec4<f32>) -> Lanes8 {
    return Lanes8(
        vec4<f32>(dot(a, subgroupBroadcast(b, 0u)), dot(a, subgroupBroadcast(b, 1u)), dot(a, subgroupBroadcast(b, 2u)), dot(a, subgroupBroadcast(b, 3u))),
        vec4<f32>(dot(a, subgroupBroadcast(b, 4u)), dot(a, subgroupBroadcast(b, 5u)), dot(a, subgroupBroadcast(b, 6u)), dot(a, subgroupBroadcast(b, 7u))),
    );
}

// Every lane's x, gathered in lane order.
fn gather8(x: f32) -> Lanes8 {
    return Lanes8(
        vec4<f32>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u), subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u)),
        vec4<f32>(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u), subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u)),
    );
}

// sum over the 8 lanes t of w_t * (lane t's x).
fn mix8(w: Lanes8, x: vec4<f32>) -> vec4<f32> {
    return w.lo.x * subgroupBroadcast(x, 0u)
        + w.lo.y * subgroupBroadcast(x, 1u)
        + w.lo.z * subgroupBroadcast(x, 2u)
        + w.lo.w * subgroupBroadcast(x, 3u)
        + w.hi.x * subgroupBroadcast(x, 4u)
        + w.hi.y * subgroupBroadcast(x, 5u)
        + w.hi.z * subgroupBroadcast(x, 6u)
        + w.hi.w * subgroupBroadcast(x, 7u);
}

// Lanes8 `a + b`.
fn add8(a: Lanes8, b: Lanes8) -> Lanes8 {
    return Lanes8(a.lo + b.lo, a.hi + b.hi);
}

// Whether each of the 8 rows first .. first + 7 lies below `end`.
fn below8(first: u32, end: u32) -> array<vec4<bool>, 2> {
    let lo = vec4<u32>(first, first + 1u, first + 2u, first + 3u);
    return array<vec4<bool>, 2>(lo < vec4<u32>(end), lo + vec4<u32>(4u) < vec4<u32>(end));
}

@compute @workgroup_size(WG)
fn attn_fwd_sg(at: Tile, @builtin(subgroup_invocation_id) lane: u32) {
    let qr = query_row(at);
    if qr.bh >= params.bh { return; }
    var q = scaled_query(qr.row);
    var run = online_start();
    for (var j = 0u; j < qr.n_max; j += 8u) {
        let r = sg_row(qr.keys, j, lane, qr.n_max);
        var s = Lanes8(vec4<f32>(0.0), vec4<f32>(0.0));
        for (var d = 0u; d < D4; d++) {
            s = add8(s, dots8(q[d], k_r[r + d]));
        }
        let seen = below8(j, qr.n);
        s = Lanes8(select(vec4<f32>(NEG), s.lo, seen[0]), select(vec4<f32>(NEG), s.hi, seen[1]));
        let sm = max(s.lo, s.hi);
        let mx = max(run.m, max(max(sm.x, sm.y), max(sm.z, sm.w)));
        let c = exp(run.m - mx);
        let p = Lanes8(exp(s.lo - vec4<f32>(mx)), exp(s.hi - vec4<f32>(mx)));
        let ps = p.lo + p.hi;
        run.l = run.l * c + (ps.x + ps.y) + (ps.z + ps.w);
        for (var d = 0u; d < D4; d++) {
            run.acc[d] = run.acc[d] * c + mix8(p, v_r[r + d]);
        }
        run.m = mx;
    }
    store_query(qr, run.acc, 1.0 / run.l, run.m + log(run.l));
}

@compute @workgroup_size(WG)
fn attn_dq_sg(at: Tile, @builtin(subgroup_invocation_id) lane: u32) {
    let qr = query_row(at);
    if qr.bh >= params.bh { return; }
    var qg = query_and_grad(qr.row);
    var acc: Row;
    for (var j = 0u; j < qr.n_max; j += 8u) {
        let r = sg_row(qr.keys, j, lane, qr.n_max);
        var s = Lanes8(vec4<f32>(0.0), vec4<f32>(0.0));
        var dp = Lanes8(vec4<f32>(0.0), vec4<f32>(0.0));
        for (var d = 0u; d < D4; d++) {
            s = add8(s, dots8(qg.q[d], k_r[r + d]));
            dp = add8(dp, dots8(qg.g[d], v_r[r + d]));
        }
        let seen = below8(j, qr.n);
        let p0 = select(vec4<f32>(0.0), exp(s.lo - vec4<f32>(qg.lse)), seen[0]);
        let p1 = select(vec4<f32>(0.0), exp(s.hi - vec4<f32>(qg.lse)), seen[1]);
        let ds = Lanes8(p0 * (dp.lo - vec4<f32>(qg.dvec)), p1 * (dp.hi - vec4<f32>(qg.dvec)));
        for (var d = 0u; d < D4; d++) {
            acc[d] += mix8(ds, k_r[r + d]);
        }
    }
    store_query(qr, acc, params.scale, qg.dvec);
}

@compute @workgroup_size(WG)
fn attn_dkv_sg(at: Tile, @builtin(subgroup_invocation_id) lane: u32) {
    let kr = key_row(at);
    if kr.bh >= params.bh { return; }
    var kv = key_value(kr);
    var dk: Row;
    var dv: Row;
    for (var i0 = kr.i_start; i0 < params.tq; i0 += 8u) {
        let mine = min(i0 + lane, params.tq - 1u);
        let r = (kr.queries + mine) * D4;
        var s = Lanes8(vec4<f32>(0.0), vec4<f32>(0.0));
        var dp = Lanes8(vec4<f32>(0.0), vec4<f32>(0.0));
        for (var d = 0u; d < D4; d++) {
            s = add8(s, dots8(kv.k[d], q_r[r + d]));
            dp = add8(dp, dots8(kv.v[d], do_r[r + d]));
        }
        let lse = gather8(lse_r[kr.queries + mine]);
        let dvec = gather8(dvec_r[kr.queries + mine]);
        let inside = below8(i0, params.tq);
        let i_lo = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
        let seen0 = inside[0] & (i_lo >= vec4<u32>(kr.i_first)) & vec4<bool>(kr.live);
        let seen1 = inside[1] & (i_lo + vec4<u32>(4u) >= vec4<u32>(kr.i_first)) & vec4<bool>(kr.live);
        let p = Lanes8(select(vec4<f32>(0.0), exp(s.lo - lse.lo), seen0), select(vec4<f32>(0.0), exp(s.hi - lse.hi), seen1));
        let ds = Lanes8(p.lo * (dp.lo - dvec.lo), p.hi * (dp.hi - dvec.hi));
        for (var d = 0u; d < D4; d++) {
            dv[d] += mix8(p, do_r[r + d]);
            dk[d] += mix8(ds, q_r[r + d]);
        }
    }
    store_key(kr, &dk, &dv);
}
