//! The official parameter names and shapes of the AR transformer and its diffusion head, and
//! the AdamW decay rule, so converted official checkpoints load by name with no mapping table.

use super::ModelConfig;

/// One parameter: official name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Official PyTorch state-dict name, e.g. `layers.0.attention.wqkv.weight`.
    pub name: String,
    /// Shape as PyTorch stores it (Linear weights are [out, in]).
    pub shape: Vec<usize>,
}

fn p(list: &mut Vec<ParamSpec>, name: String, shape: &[usize]) {
    list.push(ParamSpec {
        name,
        shape: shape.to_vec(),
    });
}

fn linear(list: &mut Vec<ParamSpec>, prefix: &str, out: usize, inp: usize, bias: bool) {
    p(list, format!("{prefix}.weight"), &[out, inp]);
    if bias {
        p(list, format!("{prefix}.bias"), &[out]);
    }
}

/// Every parameter of the AR transformer and the diffusion head (not the autoencoder `vae.`),
/// in a stable order.
pub fn ar_parameters(c: &ModelConfig) -> Vec<ParamSpec> {
    let mut v = Vec::new();
    let d = c.dim;
    p(
        &mut v,
        "cls_embedding.weight".into(),
        &[c.num_classes + 1, d * c.cls_token_num],
    );
    if c.parallel_num > 1 {
        p(&mut v, "query_token".into(), &[1, c.parallel_num - 1, d]);
    }
    let ch = c.connector_hidden();
    linear(&mut v, "proj_in.w1", 2 * ch, c.token_dim(), true);
    linear(&mut v, "proj_in.w2", d, ch, true);
    p(&mut v, "emb_norm.weight".into(), &[d]);
    for i in 0..c.n_layer {
        let l = format!("layers.{i}");
        linear(&mut v, &format!("{l}.attention.wqkv"), 3 * d, d, false);
        linear(&mut v, &format!("{l}.attention.wo"), d, d, false);
        linear(
            &mut v,
            &format!("{l}.feed_forward.w1"),
            2 * c.ffn_hidden(),
            d,
            false,
        );
        linear(
            &mut v,
            &format!("{l}.feed_forward.w2"),
            d,
            c.ffn_hidden(),
            false,
        );
        p(&mut v, format!("{l}.attention_norm.weight"), &[d]);
        p(&mut v, format!("{l}.ffn_norm.weight"), &[d]);
    }
    p(&mut v, "norm.weight".into(), &[d]);
    p(&mut v, "pos_for_diff.weight".into(), &[c.image_tokens(), d]);
    head_parameters(c, &mut v);
    v
}

/// `head.net.*`: the MLP head (1x) or the transformer head over a patch (next-patch).
fn head_parameters(c: &ModelConfig, v: &mut Vec<ParamSpec>) {
    let w = c.diff_dim;
    let hidden = w * 3 / 2;
    let n = "head.net";
    linear(v, &format!("{n}.time_embed.mlp.0"), w, 256, true);
    linear(v, &format!("{n}.time_embed.mlp.2"), w, w, true);
    linear(v, &format!("{n}.cond_embed"), w, c.dim, true);
    linear(v, &format!("{n}.input_proj"), w, c.token_dim(), true);
    for i in 0..c.diff_layers {
        let b = format!("{n}.res_blocks.{i}");
        if c.parallel_num > 1 {
            for norm in ["norm1", "norm2"] {
                p(v, format!("{b}.{norm}.weight"), &[w]);
                p(v, format!("{b}.{norm}.bias"), &[w]);
            }
            linear(v, &format!("{b}.attn.wqkv"), 3 * w, w, true);
            linear(v, &format!("{b}.attn.wo"), w, w, true);
        } else {
            p(v, format!("{b}.norm.weight"), &[w]);
            p(v, format!("{b}.norm.bias"), &[w]);
        }
        linear(v, &format!("{b}.w1"), 2 * hidden, w, true);
        linear(v, &format!("{b}.w2"), w, hidden, true);
    }
    let modulations = if c.parallel_num > 1 { 6 } else { 3 };
    for j in 0..c.diff_adanln_layers {
        linear(
            v,
            &format!("{n}.ada_ln_blocks.{j}"),
            modulations * w,
            w,
            true,
        );
    }
    linear(
        v,
        &format!("{n}.final_layer.ada_ln_modulation"),
        2 * w,
        w,
        true,
    );
    linear(
        v,
        &format!("{n}.final_layer.linear"),
        c.token_dim(),
        w,
        true,
    );
}

/// The official AdamW grouping: decay only tensors of 2+ dims whose name contains none of
/// `proj_in`, `cls_embedding`, `query_token`.
pub fn decays(name: &str, shape: &[usize]) -> bool {
    shape.len() >= 2
        && !["proj_in", "cls_embedding", "query_token"]
            .iter()
            .any(|k| name.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str) -> usize {
        let c = ModelConfig::builtin(name).unwrap();
        ar_parameters(&c)
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    #[test]
    fn parameter_counts_match_the_released_models() {
        // BITDANCE.md: B-1x 242M, B-4x 260M, L-1x 527M, H-1x 1.0B (AR + head).
        for (name, millions) in [
            ("B-1x", 242.0),
            ("B-4x", 260.0),
            ("L-1x", 527.0),
            ("H-1x", 1000.0),
        ] {
            let got = count(name) as f64 / 1e6;
            eprintln!("{name}: {got:.1}M");
            assert!(
                (got - millions).abs() / millions < 0.02,
                "{name}: {got:.1}M parameters, expected about {millions}M"
            );
        }
    }

    #[test]
    fn names_are_unique_and_decay_follows_the_official_rule() {
        let c = ModelConfig::builtin("B-4x").unwrap();
        let params = ar_parameters(&c);
        let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), params.len());
        assert!(decays("layers.3.attention.wqkv.weight", &[2304, 768]));
        assert!(!decays("proj_in.w1.weight", &[2304, 32]));
        assert!(!decays("query_token", &[1, 3, 768]));
        assert!(!decays("head.net.res_blocks.0.w1.bias", &[1728]));
    }
}
