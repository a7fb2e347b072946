//! f64 references of the GroupNorm family: GroupNorm and AdaptiveGroupNorm of x [B, C, H·W].

/// GroupNorm of x [B, C, H, W] (`hw` = H * W) over `groups` channel groups, biased variance;
/// weight ones and bias zeros by default.
pub fn group_norm(
    x: &[f64],
    c: usize,
    hw: usize,
    groups: usize,
    weight: Option<&[f64]>,
    bias: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
    let len = c / groups * hw;
    let mut y = Vec::with_capacity(x.len());
    for (row, g) in x.chunks(len).enumerate() {
        let mean = g.iter().sum::<f64>() / len as f64;
        let var = g.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
        let r = 1.0 / (var + eps).sqrt();
        let c0 = (row % groups) * (c / groups);
        y.extend(g.iter().enumerate().map(|(i, v)| {
            let ch = c0 + i / hw;
            (v - mean) * r * weight.map_or(1.0, |w| w[ch]) + bias.map_or(0.0, |b| b[ch])
        }));
    }
    y
}

/// AdaptiveGroupNorm of x [B, C, H·W]: GroupNorm without affine, then `scale[b, c]` and
/// `shift[b, c]` ([B, C] each) per image and channel.
pub fn adaptive_group_norm(
    x: &[f64],
    c: usize,
    hw: usize,
    groups: usize,
    scale: &[f64],
    shift: &[f64],
    eps: f64,
) -> Vec<f64> {
    let y = group_norm(x, c, hw, groups, None, None, eps);
    y.iter()
        .enumerate()
        .map(|(i, v)| v * scale[i / hw] + shift[i / hw])
        .collect()
}
