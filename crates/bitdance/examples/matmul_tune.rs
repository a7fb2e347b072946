//! Times every matmul tile configuration at the BitDance-B shapes on the present adapter.

fn main() -> bitdance::Result<()> {
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env())?;
    println!("adapter: {}", gpu.adapter().name);
    for (m, k, n) in [(256, 768, 2304), (256, 2048, 768), (1024, 1024, 1024)] {
        for (i, c) in bitdance::ops::MATMUL_CONFIGS.iter().enumerate() {
            let g = bitdance::ops::bench_matmul_with(&gpu, *c, m, k, n, 2)?;
            println!("{m}x{k}x{n} cfg{i} {c:?}: {g:.2} GFLOP/s");
        }
    }
    Ok(())
}
