//! Prints conv2d GFLOP/s (3x3, stride 1, pad 1) for a few autoencoder-like shapes.
//! `cargo run --release -p bitdance --example conv_bench -- [iters]`

use bitdance::{ops, Gpu, Tensor};

fn main() -> bitdance::Result<()> {
    let gpu = bitdance::gpu::block_on(Gpu::from_env())?;
    println!("adapter: {:?}", gpu.adapter());
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    for &(c, hw, k) in &[(128, 32, 3), (256, 32, 3), (128, 64, 3), (256, 32, 1)] {
        let x = Tensor::full(&gpu, &[1, c, hw, hw], 0.5)?;
        let w = Tensor::full(&gpu, &[c, c, k, k], 0.01)?;
        ops::conv2d(&x, &w, None, 1, k / 2)?.read_f32()?;
        let start = std::time::Instant::now();
        let mut y = None;
        for _ in 0..iters {
            y = Some(ops::conv2d(&x, &w, None, 1, k / 2)?);
        }
        y.map(|y| y.read_f32()).transpose()?;
        let s = start.elapsed().as_secs_f64() / iters as f64;
        let flop = 2.0 * (c * c * k * k * hw * hw) as f64;
        println!(
            "conv2d {k}x{k} [1,{c},{hw},{hw}] -> {c}: {:.2} ms, {:.2} GFLOP/s",
            s * 1e3,
            flop / s / 1e9
        );
    }
    Ok(())
}
