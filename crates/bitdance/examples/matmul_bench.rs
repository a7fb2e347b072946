//! Prints matmul GFLOP/s per configuration for the BitDance-B shapes and 1024^3.
//! `cargo run --release -p bitdance --example matmul_bench -- [iters] [config index..]`

use bitdance::ops::{
    autotune_matmul, bench_matmul, bench_matmul_with, matmul_candidates, MatmulConfig,
    MATMUL_CONFIGS,
};
use bitdance::Gpu;

fn main() -> bitdance::Result<()> {
    let gpu = bitdance::gpu::block_on(Gpu::from_env())?;
    println!("adapter: {:?}", gpu.adapter());
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let iters = args.first().copied().unwrap_or(3);
    let start = std::time::Instant::now();
    let tuned = autotune_matmul(&gpu)?;
    println!("autotune: {tuned} in {:.2?}", start.elapsed());
    println!(
        "bench_matmul 1024^3 (tuned): {:.2} GFLOP/s",
        bench_matmul(&gpu, 1024, 1024, 1024, iters)?
    );
    let configs: Vec<MatmulConfig> = if args.len() > 1 {
        args[1..].iter().map(|&i| MATMUL_CONFIGS[i]).collect()
    } else {
        matmul_candidates(&gpu)
    };
    let mut shapes = vec![
        (256, 768, 2304),
        (256, 768, 4096),
        (256, 2048, 768),
        (1024, 1024, 1024),
    ];
    if let Ok(list) = std::env::var("MM_SHAPES") {
        shapes = list
            .split(',')
            .map(|s| {
                let d: Vec<usize> = s.split('x').map(|v| v.parse().unwrap()).collect();
                (d[0], d[1], d[2])
            })
            .collect();
    }
    for config in configs {
        for trans_b in [false, true] {
            let mut line = format!(
                "{:<26} {}",
                config.to_string(),
                if trans_b { "NT" } else { "NN" }
            );
            for &(m, k, n) in &shapes {
                let mut g = 0.0f64;
                for _ in 0..3 {
                    g = g.max(bench_matmul_with(&gpu, m, k, n, trans_b, config, iters)?);
                }
                line += &format!("  {m}x{k}x{n}: {g:6.2}");
            }
            println!("{line}");
        }
    }
    Ok(())
}
