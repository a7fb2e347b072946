//! `bitdance bench matmul | attention | conv`: GPU kernel throughput at BitDance-B shapes next to
//! a CPU reference measured in the same run (matrixmultiply's SGEMM, multi-threaded on up to 4
//! cores, and attention or convolution built on it), both timed the same way: warm-up, then
//! repeated runs. Both sides are credited with the same FLOP count, so the ratio is a ratio of
//! times.

use bitdance::ops::{self, AttentionMask, AttentionSpan, MatmulConfig};
use bitdance::rng::Rng;
use bitdance::{Gpu, Tensor};

use super::timing::{measure_calls, Timing};
use super::Report;

/// Seconds of GPU work per timed run of a short kernel (calls are repeated to fill it).
const RUN_S: f64 = 0.2;

/// Linear layers x[m, k] · w[n, k]ᵀ (the form every linear uses) of the B transformer on a
/// 256-row batch (training and batched sampling: qkv, FFN in, FFN out), of the head on one
/// sampling step of a 4x model (8 rows: 4 tokens x cond/uncond), and a square reference.
const LINEAR_SHAPES: [(usize, usize, usize); 5] = [
    (256, 768, 2304),
    (8, 768, 2304),
    (256, 768, 4096),
    (256, 2048, 768),
    (1024, 1024, 1024),
];

/// Matmul at `LINEAR_SHAPES` with the adapter's configuration (after autotune unless
/// `no_autotune`), or with every candidate configuration when `all_configs`; each with f32
/// and with 16-bit weights.
pub fn matmul(
    gpu: &Gpu,
    repeats: usize,
    no_autotune: bool,
    all_configs: bool,
    out: &mut Report,
) -> anyhow::Result<()> {
    if !no_autotune {
        let best = ops::autotune_matmul(gpu)?;
        out.note(&format!("autotune chose {best}"));
    }
    let configs = if all_configs {
        ops::matmul_candidates(gpu)
    } else {
        vec![ops::matmul_config(gpu)]
    };
    for (m, k, n) in LINEAR_SHAPES {
        let flop = 2.0 * (m * k * n) as f64;
        let reference = cpu_sgemm_timing(m, k, n, repeats)?;
        for &config in &configs {
            for half in [false, true] {
                let gpu_t = gpu_matmul_timing(gpu, m, k, n, config, half, repeats)?;
                let weights = if half { " f16" } else { "" };
                let shape = if all_configs {
                    format!("[{m}x{k}]x[{n}x{k}]T{weights} {config}")
                } else {
                    format!("[{m}x{k}]x[{n}x{k}]T{weights}")
                };
                out.row("matmul", &shape, flop, &gpu_t, &reference);
            }
        }
    }
    Ok(())
}

fn gpu_matmul_timing(
    gpu: &Gpu,
    m: usize,
    k: usize,
    n: usize,
    config: MatmulConfig,
    half: bool,
    repeats: usize,
) -> anyhow::Result<Timing> {
    let mut rng = Rng::new(7);
    let a = Tensor::from_f32(gpu, &[m, k], &rng.normal_vec(m * k))?;
    let w = if half {
        Tensor::from_f32_as_f16(gpu, &[n, k], &rng.normal_vec(k * n))?
    } else {
        Tensor::from_f32(gpu, &[n, k], &rng.normal_vec(k * n))?
    };
    measure_calls(repeats, RUN_S, |calls| {
        for _ in 0..calls {
            drop(ops::matmul_with(&a, &w, None, false, true, config)?);
        }
        Ok(gpu.synchronize()?)
    })
}

fn cpu_sgemm_timing(m: usize, k: usize, n: usize, repeats: usize) -> anyhow::Result<Timing> {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    measure_calls(repeats, RUN_S, |calls| {
        for _ in 0..calls {
            sgemm(m, k, n, &a, &w, &mut c, true);
        }
        Ok(())
    })
}

/// Attention: causal prefill over the 319-token BitDance-B sequence and a 4-query decode step,
/// 12 heads of 64.
pub fn attention(gpu: &Gpu, repeats: usize, out: &mut Report) -> anyhow::Result<()> {
    let (h, d) = (12, 64);
    for (tq, tk) in [(319usize, 319usize), (4, 319)] {
        // QKᵀ and PV over the (query, key) pairs the causal mask leaves visible: query i (at
        // position tk - tq + i) sees tk - tq + i + 1 keys.
        let pairs: usize = (0..tq).map(|i| tk - tq + i + 1).sum();
        let flop = 4.0 * (h * pairs * d) as f64;
        let mut rng = Rng::new(7);
        let q = Tensor::from_f32(gpu, &[1, h, tq, d], &rng.normal_vec(h * tq * d))?;
        let k = Tensor::from_f32(gpu, &[1, h, tk, d], &rng.normal_vec(h * tk * d))?;
        let v = Tensor::from_f32(gpu, &[1, h, tk, d], &rng.normal_vec(h * tk * d))?;
        let scale = 1.0 / (d as f32).sqrt();
        let gpu_t = measure_calls(repeats, RUN_S, |calls| {
            for _ in 0..calls {
                ops::attention(
                    &q,
                    &k,
                    &v,
                    AttentionSpan::all_keys(tk, tq, AttentionMask::Causal, scale),
                )?;
            }
            Ok(gpu.synchronize()?)
        })?;
        let reference = cpu_attention_timing(h, tq, tk, d, repeats)?;
        let shape = format!("B1 H{h} Tq{tq} Tk{tk} D{d}");
        out.row("attention", &shape, flop, &gpu_t, &reference);
    }
    Ok(())
}

/// 3x3 and 1x1 convolutions (stride 1, padding k/2) at the B decoder's widths and sizes.
pub fn conv(gpu: &Gpu, repeats: usize, out: &mut Report) -> anyhow::Result<()> {
    for (ch, side, kernel) in [(512, 32, 3), (256, 64, 3), (256, 128, 3), (512, 32, 1)] {
        let flop = 2.0 * (ch * ch * kernel * kernel * side * side) as f64;
        let mut rng = Rng::new(7);
        let x = Tensor::from_f32(gpu, &[1, ch, side, side], &rng.normal_vec(ch * side * side))?;
        let w = Tensor::from_f32(
            gpu,
            &[ch, ch, kernel, kernel],
            &rng.normal_vec(ch * ch * kernel * kernel),
        )?;
        let gpu_t = measure_calls(repeats, RUN_S, |calls| {
            for _ in 0..calls {
                drop(ops::conv2d(&x, &w, None, 1, kernel / 2)?);
            }
            Ok(gpu.synchronize()?)
        })?;
        let reference = cpu_conv_timing(ch, side, kernel, repeats)?;
        let shape = format!("{kernel}x{kernel} [1,{ch},{side},{side}]->{ch}");
        out.row("conv", &shape, flop, &gpu_t, &reference);
    }
    Ok(())
}

/// Row-major SGEMM on every core, optionally with B given as [n, k] (transposed).
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], b_t: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsb, csb) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the slices hold m*k, k*n and m*n elements (checked above), matching the strides.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Causal attention per head on the CPU: SGEMM for QKᵀ and PV, the softmax in between.
fn cpu_attention_timing(
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    repeats: usize,
) -> anyhow::Result<Timing> {
    let q: Vec<f32> = (0..tq * d)
        .map(|i| ((i % 11) as f32 - 5.0) * 0.05)
        .collect();
    let k: Vec<f32> = (0..tk * d)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.05)
        .collect();
    let v = k.clone();
    let mut s = vec![0f32; tq * tk];
    let mut o = vec![0f32; tq * d];
    let scale = 1.0 / (d as f32).sqrt();
    measure_calls(repeats, RUN_S, |calls| {
        for _ in 0..calls * h {
            sgemm(tq, d, tk, &q, &k, &mut s, true);
            for (i, row) in s.chunks_mut(tk).enumerate() {
                let visible = tk - tq + i + 1;
                let max = row[..visible]
                    .iter()
                    .fold(f32::MIN, |a, &b| a.max(b * scale));
                let mut sum = 0.0;
                for x in row[..visible].iter_mut() {
                    *x = (*x * scale - max).exp();
                    sum += *x;
                }
                row[..visible].iter_mut().for_each(|x| *x /= sum);
                row[visible..].iter_mut().for_each(|x| *x = 0.0);
            }
            sgemm(tq, tk, d, &s, &v, &mut o, false);
        }
        Ok(())
    })
}

/// Convolution on the CPU as im2col then SGEMM (what a CPU framework without a direct
/// convolution does).
fn cpu_conv_timing(
    ch: usize,
    side: usize,
    kernel: usize,
    repeats: usize,
) -> anyhow::Result<Timing> {
    let pad = kernel / 2;
    let taps = ch * kernel * kernel;
    let pixels = side * side;
    let x: Vec<f32> = (0..ch * pixels).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..ch * taps).map(|i| (i % 5) as f32 * 0.01).collect();
    let mut cols = vec![0f32; taps * pixels];
    let mut y = vec![0f32; ch * pixels];
    measure_calls(repeats, RUN_S, |calls| {
        for _ in 0..calls {
            for c in 0..ch {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let row = &mut cols[((c * kernel + ky) * kernel + kx) * pixels..][..pixels];
                        for oy in 0..side {
                            let iy = (oy + ky) as isize - pad as isize;
                            for ox in 0..side {
                                let ix = (ox + kx) as isize - pad as isize;
                                let inside = (0..side as isize).contains(&iy)
                                    && (0..side as isize).contains(&ix);
                                row[oy * side + ox] = if inside {
                                    x[(c * side + iy as usize) * side + ix as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
            sgemm(ch, taps, pixels, &w, &cols, &mut y, false);
        }
        Ok(())
    })
}
