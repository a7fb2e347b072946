//! Conformance of the sampler's fused update.

use crate::conformance::{Checker, TOL};
use crate::ops;
use crate::reference::flow_step_ref;
use crate::Result;

pub(crate) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("flow", "setup".into(), e);
    }
}

async fn all(c: &mut Checker) -> Result<()> {
    let n = 3 * 37;
    for (guided, noisy, t, dt, cfg) in [
        (true, true, 0.3f32, 0.0095f32, 3.9f32),
        (false, true, 0.0, 0.0095, 1.0),
        (true, false, 0.95, 0.05, 2.0),
        (false, false, 0.97, 0.05, 1.0),
    ] {
        let (x, xv) = c.randn(&[n])?;
        let (pred, pv) = c.randn(&[if guided { 2 * n } else { n }])?;
        let (noise, nv) = c.randn(&[n])?;
        let r = flow_step_ref(
            &xv,
            &pv,
            noisy.then_some(&nv[..]),
            t as f64,
            dt as f64,
            cfg as f64,
        );
        let out = ops::flow_step(&x, &pred, noisy.then_some(&noise), t, dt, cfg).map(|_| x);
        let name = format!(
            "flow step{}{}",
            if noisy {
                " (Euler-Maruyama)"
            } else {
                " (Euler)"
            },
            if guided { " +cfg" } else { "" }
        );
        c.compare(&name, format!("[{n}] t={t}"), out, &r, TOL).await;
    }
    Ok(())
}
