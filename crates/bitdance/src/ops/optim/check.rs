//! Conformance of AdamW and the clip factor against the f64 reference.

use crate::conformance::{Checker, TOL};
use crate::ops::{self, AdamWStep};
use crate::reference::{adamw_ref, clip_factor_ref};
use crate::{Result, Tensor};

pub(crate) async fn run(c: &mut Checker) {
    // 1032: the vec4 kernels; `true`: with the fused EMA update.
    for (n, wd, ema) in [
        (1031usize, 0.1f32, false),
        (37, 0.0, true),
        (1032, 0.1, false),
        (1032, 0.1, true),
    ] {
        if let Err(e) = check_adamw(c, n, wd, ema).await {
            c.fail("adamw", format!("[{n}]"), e);
        }
    }
}

async fn check_adamw(c: &mut Checker, n: usize, wd: f32, with_ema: bool) -> Result<()> {
    const EMA_DECAY: f32 = 0.75;
    let (p, mut pv) = c.randn(&[n])?;
    let (shadow, mut shadow_v) = c.randn(&[n])?;
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
        c.results.push(crate::conformance::CheckResult {
            op: "clip factor".into(),
            shapes: format!("[{n}] step {step}"),
            rel_error: ((got[0] as f64 - factor) / factor).abs(),
            tolerance: TOL,
            error: None,
            skipped: None,
        });
        let h = AdamWStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: wd,
            step,
        };
        let ema = with_ema.then_some((&shadow, EMA_DECAY));
        ops::adamw_update(&p, &m, &v, &g, &clip, &h, ema)?;
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
        if with_ema {
            let d = EMA_DECAY as f64;
            for (s, p) in shadow_v.iter_mut().zip(&pv) {
                *s = d * *s + (1.0 - d) * p;
            }
        }
    }
    if with_ema {
        c.compare(
            "adamw + EMA shadow",
            format!("[{n}]"),
            Ok(shadow),
            &shadow_v,
            TOL,
        )
        .await;
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
