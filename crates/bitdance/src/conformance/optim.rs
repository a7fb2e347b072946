//! Conformance of AdamW and the clip factor against the f64 reference.

use super::{Checker, TOL};
use crate::ops::{self, AdamWStep};
use crate::reference::{adamw_ref, clip_factor_ref};
use crate::{Result, Tensor};

pub(super) async fn run(c: &mut Checker) {
    // 1032: the vec4 kernel.
    for (n, wd) in [(1031usize, 0.1f32), (37, 0.0), (1032, 0.1)] {
        if let Err(e) = check_adamw(c, n, wd).await {
            c.fail("adamw", format!("[{n}]"), e);
        }
    }
}

async fn check_adamw(c: &mut Checker, n: usize, wd: f32) -> Result<()> {
    let (p, mut pv) = c.randn(&[n])?;
    let m = Tensor::zeros(&c.gpu, &[n])?;
    let v = Tensor::zeros(&c.gpu, &[n])?;
    let (mut mv, mut vv) = (vec![0.0; n], vec![0.0; n]);
    for step in 1..=3u64 {
        let (g, gv) = c.randn(&[n])?;
        let g = ops::scale(&g, 3.0)?;
        let gv: Vec<f64> = gv.iter().map(|x| x * 3.0).collect();
        let max_norm = 0.5 * (n as f32).sqrt();
        let norm2 = Tensor::from_f32(
            &c.gpu,
            &[1],
            &[gv.iter().map(|x| x * x).sum::<f64>() as f32],
        )?;
        let clip = ops::clip_factor(&norm2, max_norm)?;
        let factor = clip_factor_ref(&[&gv], max_norm as f64);
        let got = clip.to_vec_f32().await?;
        c.results.push(super::CheckResult {
            op: "clip factor".into(),
            shapes: format!("[{n}] step {step}"),
            rel_error: ((got[0] as f64 - factor) / factor).abs(),
            tolerance: TOL,
            error: None,
        });
        let h = AdamWStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: wd,
            step,
        };
        ops::adamw_update(&p, &m, &v, &g, &clip, &h)?;
        let gc: Vec<f64> = gv.iter().map(|x| x * factor).collect();
        adamw_ref(
            &mut pv,
            &mut mv,
            &mut vv,
            &gc,
            1e-2,
            (0.9, 0.95),
            1e-8,
            wd as f64,
            step as i32,
        );
    }
    c.compare(
        "adamw (3 steps, clipped)",
        format!("[{n}] wd {wd}"),
        Ok(p),
        &pv,
        TOL,
    )
    .await;
    c.compare("adamw first moment", format!("[{n}]"), Ok(m), &mv, TOL)
        .await;
    c.compare("adamw second moment", format!("[{n}]"), Ok(v), &vv, TOL)
        .await;
    Ok(())
}
