// Attention over [B, H, T, D] tensors, bound as rows of D4 vec4s (the head layout permutations
// around it are in layout.wgsl). Defines: D4 = D / 4; WG = rows (queries or keys) per workgroup.
//
// Every mask keeps a prefix of the keys visible: query position qp sees keys 0..visible_end(qp),
// and visible_end is non-decreasing in qp (so the queries seeing key j are a suffix too). A
// workgroup handles WG consecutive rows of one head (queries for attn_fwd / attn_dq, keys for
// attn_dkv) and loops over the range its last (first) row needs, a bound that depends only on
// the workgroup id; each lane masks what it must not see with a select. On llvmpipe, whose
// invocations are SIMD lanes, the K/V (Q/dO) loads then sit at workgroup-uniform addresses: one
// scalar load and a broadcast instead of a per-lane gather. No barrier, no atomics.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/attention/mod.rs
// (its fields are documented there) and prepended to this source.


const NEG: f32 = -3.0e38;

// One head row of D values as vec4s.
alias Row = array<vec4<f32>, D4>;

@group(0) @binding(0) var<uniform> params: Params;

// Attention bindings (forward: out, lse, q, k, v; dq: dq, dvec, q, k, v, dout, lse, out;
// dkv: dk, dv, q, k, v, dout, lse, dvec).
@group(0) @binding(1) var<storage, read_write> out_w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> row_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv_w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> q_r: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k_r: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> v_r: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> do_r: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> lse_r: array<f32>;
@group(0) @binding(8) var<storage, read> o_r: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> dvec_r: array<f32>;

// End (exclusive) of the keys visible from absolute query position qp, clamped to kv_len.
fn visible_end(qp: u32) -> u32 {
    var end = params.kv_len;
    if params.mask_kind == 1u {
        end = qp + 1u;
    } else if params.mask_kind == 2u {
        end = qp + 1u;
        if qp >= params.bstart {
            end = params.bstart + ((qp - params.bstart) / params.block + 1u) * params.block;
        }
    }
    return min(end, params.kv_len);
}

// First query row (relative to q_offset) that sees key j.
fn first_query(j: u32) -> u32 {
    var p = 0u;
    if params.mask_kind == 1u {
        p = j;
    } else if params.mask_kind == 2u {
        p = j;
        if j >= params.bstart {
            p = params.bstart + ((j - params.bstart) / params.block) * params.block;
        }
    }
    if p > params.q_offset {
        return p - params.q_offset;
    }
    return 0u;
}

// The builtins every attention kernel reads: its lane in the workgroup and the workgroup's place.
struct Tile {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// (head index bh, first row) of this workgroup's tile of WG rows out of `rows` per head.
fn tile_of(at: Tile, rows: u32) -> vec2<u32> {
    let w = at.wid.x + at.wid.y * at.nwg.x;
    let tiles = (rows + WG - 1u) / WG;
    return vec2<u32>(w / tiles, (w % tiles) * WG);
}

// A query invocation's place: head bh of its tile of WG rows, its row i (row: clamped into
// the head, as an index of [BH, Tq] rows), the keys it sees (0..n), the keys its whole
// tile needs (0..n_max, workgroup-uniform) and its head's first key row (keys).
struct QueryRow {
    bh: u32, i: u32, row: u32,  // the place
    n: u32, n_max: u32,         // the keys seen
    keys: u32,
}

fn query_row(at: Tile) -> QueryRow {
    let tile = tile_of(at, params.tq);
    let ic = min(tile.y + at.lid, params.tq - 1u);
    let last = min(tile.y + WG - 1u, params.tq - 1u);
    return QueryRow(
        tile.x,
        tile.y + at.lid,
        tile.x * params.tq + ic,
        visible_end(params.q_offset + ic),
        visible_end(params.q_offset + last),
        tile.x * params.tk_cap,
    );
}

// The query row `row` times params.scale.
fn scaled_query(row: u32) -> Row {
    var q: Row;
    for (var d = 0u; d < D4; d++) {
        q[d] = q_r[row * D4 + d] * params.scale;
    }
    return q;
}

// The running state of the forward's online softmax: the weighted sum of the values (acc),
// the largest score so far (m) and the sum of exp(score - m) (l).
struct Online {
    acc: Row,
    m: f32,
    l: f32,
}

fn online_start() -> Online {
    var run: Online;
    run.m = NEG;
    return run;
}

// What attn_dq reads of a query row: q times params.scale, its output gradient g, dvec =
// rowsum(dout * out) and the forward's log-sum-exp.
struct QueryGrad {
    q: Row,
    g: Row,
    dvec: f32,
    lse: f32,
}

fn query_and_grad(row: u32) -> QueryGrad {
    var r: QueryGrad;
    r.q = scaled_query(row);
    r.lse = lse_r[row];
    for (var d = 0u; d < D4; d++) {
        r.g[d] = do_r[row * D4 + d];
        r.dvec += dot(r.g[d], o_r[row * D4 + d]);
    }
    return r;
}

// Writes a query's results when its row lies inside the head: out_w = acc * factor and
// row_w = value (attn_fwd: the output and the log-sum-exp; attn_dq: dq and dvec).
fn store_query(qr: QueryRow, acc: Row, factor: f32, value: f32) {
    if qr.i < params.tq {
        for (var d = 0u; d < D4; d++) {
            out_w[qr.row * D4 + d] = acc[d] * factor;
        }
        row_w[qr.row] = value;
    }
}

// A key invocation's place: head bh of its tile of WG keys, its key j (row: clamped below
// kv_len, as the vec4 index of its start; live: j < kv_len), the first query that sees it
// the first query its whole tile needs (workgroup-uniform) and its head's first query row
// (queries).
struct KeyRow {
    bh: u32,
    j: u32,
    row: u32,
    live: bool,
    i_first: u32,
    i_start: u32,
    queries: u32,
}

fn key_row(at: Tile) -> KeyRow {
    let tile = tile_of(at, params.tk_cap);
    let j = tile.y + at.lid;
    let jc = min(j, params.kv_len - 1u);
    var i_start = params.tq;
    if tile.y < params.kv_len {
        i_start = min(first_query(tile.y), params.tq);
    }
    let row = (tile.x * params.tk_cap + jc) * D4;
    return KeyRow(tile.x, j, row, j < params.kv_len, first_query(jc), i_start, tile.x * params.tq);
}

// A key row times params.scale (k) and its value row (v).
struct KeyValue {
    k: Row,
    v: Row,
}

fn key_value(kr: KeyRow) -> KeyValue {
    var kv: KeyValue;
    for (var d = 0u; d < D4; d++) {
        kv.k[d] = k_r[kr.row + d] * params.scale;
        kv.v[d] = v_r[kr.row + d];
    }
    return kv;
}

// Writes a key's gradients (scale * dk into out_w, dv into dv_w) when it lies inside the cache.
fn store_key(kr: KeyRow, dk: ptr<function, Row>, dv: ptr<function, Row>) {
    if kr.j < params.tk_cap {
        let w = (kr.bh * params.tk_cap + kr.j) * D4;
        for (var d = 0u; d < D4; d++) {
            out_w[w + d] = (*dk)[d] * params.scale;
            dv_w[w + d] = (*dv)[d];
        }
    }
}

// Forward: online softmax over keys, four at a time (one rescale per four keys).
@compute @workgroup_size(WG)
fn attn_fwd(at: Tile) {
    let qr = query_row(at);
    if qr.bh >= params.bh { return; }
    var q = scaled_query(qr.row);
    var run = online_start();
    let kb = qr.keys;
    let n_max = qr.n_max;
    for (var j = 0u; j < n_max; j += 4u) {
        let r0 = (kb + j) * D4;
        let r1 = (kb + min(j + 1u, n_max - 1u)) * D4;
        let r2 = (kb + min(j + 2u, n_max - 1u)) * D4;
        let r3 = (kb + min(j + 3u, n_max - 1u)) * D4;
        var s = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) {
            s += vec4<f32>(
                dot(q[d], k_r[r0 + d]),
                dot(q[d], k_r[r1 + d]),
                dot(q[d], k_r[r2 + d]),
                dot(q[d], k_r[r3 + d]),
            );
        }
        s = select(vec4<f32>(NEG), s, vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(qr.n));
        let mx = max(run.m, max(max(s.x, s.y), max(s.z, s.w)));
        let c = exp(run.m - mx);
        let p = exp(s - vec4<f32>(mx));
        run.l = run.l * c + (p.x + p.y) + (p.z + p.w);
        for (var d = 0u; d < D4; d++) {
            run.acc[d] = run.acc[d] * c + p.x * v_r[r0 + d] + p.y * v_r[r1 + d]
                + p.z * v_r[r2 + d] + p.w * v_r[r3 + d];
        }
        run.m = mx;
    }
    store_query(qr, run.acc, 1.0 / run.l, run.m + log(run.l));
}

// Backward, per query: dvec = rowsum(dout * out) (written for attn_dkv), and
// dq = scale * sum_j p_ij (dout_i . v_j - dvec_i) k_j.
@compute @workgroup_size(WG)
fn attn_dq(at: Tile) {
    let qr = query_row(at);
    if qr.bh >= params.bh { return; }
    var qg = query_and_grad(qr.row);
    var acc: Row;
    for (var j = 0u; j < qr.n_max; j++) {
        let r = (qr.keys + j) * D4;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D4; d++) {
            s += dot(qg.q[d], k_r[r + d]);
            dp += dot(qg.g[d], v_r[r + d]);
        }
        let p = select(0.0, exp(s - qg.lse), j < qr.n);
        let ds = p * (dp - qg.dvec);
        for (var d = 0u; d < D4; d++) {
            acc[d] += ds * k_r[r + d];
        }
    }
    store_query(qr, acc, params.scale, qg.dvec);
}

// Backward, per key j (all tk_cap rows; rows at or past kv_len get zeros):
// dv = sum_i p_ij dout_i, dk = scale * sum_i p_ij (dout_i . v_j - dvec_i) q_i.
@compute @workgroup_size(WG)
fn attn_dkv(at: Tile) {
    let kr = key_row(at);
    if kr.bh >= params.bh { return; }
    var kv = key_value(kr);
    var dk: Row;
    var dv: Row;
    for (var i = kr.i_start; i < params.tq; i++) {
        let r = (kr.queries + i) * D4;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D4; d++) {
            s += dot(q_r[r + d], kv.k[d]);
            dp += dot(do_r[r + d], kv.v[d]);
        }
        let p = select(0.0, exp(s - lse_r[kr.queries + i]), kr.live && i >= kr.i_first);
        let ds = p * (dp - dvec_r[kr.queries + i]);
        for (var d = 0u; d < D4; d++) {
            dv[d] += p * do_r[r + d];
            dk[d] += ds * q_r[r + d];
        }
    }
    store_key(kr, &dk, &dv);
}
