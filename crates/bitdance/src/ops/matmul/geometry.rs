//! Shape analysis of a matmul call: batch, M, K, N and the element strides of A, B and C.

use crate::{Error, Result};

/// Sizes and strides of one matmul: A(b, m, k) sits at `b*a_batch + m*a_ms + k*a_ks`,
/// B(b, k, n) at `b*b_batch + k*b_ks + n*b_ns`, C(b, i, j) at `(b*m + i)*n + j`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_batch: usize,
    pub a_ms: usize,
    pub a_ks: usize,
    /// 0 when B is 2-D and broadcast over the batch.
    pub b_batch: usize,
    pub b_ks: usize,
    pub b_ns: usize,
    pub out_shape: Vec<usize>,
}

fn describe(a: &[usize], b: &[usize], trans_a: bool, trans_b: bool) -> String {
    format!("a {a:?} (trans_a={trans_a}) x b {b:?} (trans_b={trans_b})")
}

/// Checks the shapes of `a`, `b` and `bias` and derives the geometry (see `ops::matmul`).
pub(crate) fn geometry(
    a: &[usize],
    b: &[usize],
    bias: Option<&[usize]>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Geometry> {
    let err = |why: String| Error::Shape {
        op: "matmul",
        detail: format!("{}: {why}", describe(a, b, trans_a, trans_b)),
    };
    if a.len() < 2 || b.len() < 2 {
        return Err(err("both operands need at least 2 dims".into()));
    }
    let (a_lead, a_mat) = a.split_at(a.len() - 2);
    let (b_lead, b_mat) = b.split_at(b.len() - 2);
    let (m, ka) = if trans_a {
        (a_mat[1], a_mat[0])
    } else {
        (a_mat[0], a_mat[1])
    };
    let (kb, n) = if trans_b {
        (b_mat[1], b_mat[0])
    } else {
        (b_mat[0], b_mat[1])
    };
    if ka != kb {
        return Err(err(format!("inner dims differ (K = {ka} vs {kb})")));
    }
    let k = ka;
    let broadcast = b.len() == 2;
    if !broadcast && a_lead != b_lead {
        return Err(err(format!(
            "batch dims differ ({a_lead:?} vs {b_lead:?}); b must be 2-D or share a's batch dims"
        )));
    }
    if let Some(bias) = bias {
        if bias != [n] {
            return Err(err(format!("bias {bias:?} must be [{n}] (N)")));
        }
    }
    let batch: usize = a_lead.iter().product();
    let mut out_shape = a_lead.to_vec();
    out_shape.extend_from_slice(&[m, n]);
    let (a_ms, a_ks) = if trans_a { (1, m) } else { (k, 1) };
    let (b_ks, b_ns) = if trans_b { (1, k) } else { (n, 1) };
    let mut g = Geometry {
        batch,
        m,
        k,
        n,
        a_batch: m * k,
        a_ms,
        a_ks,
        b_batch: if broadcast { 0 } else { k * n },
        b_ks,
        b_ns,
        out_shape,
    };
    // A weight shared by every batch entry of an untransposed A: the batch is extra rows.
    if broadcast && !trans_a && batch > 1 {
        g.m *= batch;
        g.batch = 1;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::geometry;

    #[test]
    fn shapes_and_errors() {
        let g = geometry(&[2, 3, 5, 7], &[7, 4], Some(&[4]), false, false).unwrap();
        assert_eq!((g.batch, g.m, g.k, g.n), (1, 30, 7, 4));
        assert_eq!(g.out_shape, vec![2, 3, 5, 4]);
        let g = geometry(&[2, 7, 5], &[4, 7], None, true, true).unwrap();
        assert_eq!((g.batch, g.m, g.k, g.n, g.b_batch), (2, 5, 7, 4, 0));
        let g = geometry(&[3, 5, 7], &[3, 4, 7], None, false, true).unwrap();
        assert_eq!((g.batch, g.b_batch, g.b_ks, g.b_ns), (3, 28, 1, 7));
        for (a, b, bias) in [
            (vec![5, 7], vec![6, 4], None),
            (vec![2, 5, 7], vec![3, 7, 4], None),
            (vec![5, 7], vec![2, 7, 4], None),
            (vec![5, 7], vec![7, 4], Some(vec![5])),
            (vec![7], vec![7, 4], None),
        ] {
            let e = geometry(&a, &b, bias.as_deref(), false, false).unwrap_err();
            assert!(e.to_string().contains("matmul"), "{e}");
        }
    }
}
