//! Parameter specs (official name and shape) and the official AdamW decay rule; the AR model's
//! specs come from its typed weights (`weights.rs`), so checkpoints load by name.

/// One parameter: official name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Official PyTorch state-dict name, e.g. `layers.0.attention.wqkv.weight`.
    pub name: String,
    /// Shape as PyTorch stores it (Linear weights are [out, in]).
    pub shape: Vec<usize>,
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
    use crate::model::{ar_parameters, ModelConfig};

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
        // The order checkpoints and optimizer states were written in.
        let first: Vec<&str> = params[..8].iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            first,
            [
                "cls_embedding.weight",
                "query_token",
                "proj_in.w1.weight",
                "proj_in.w1.bias",
                "proj_in.w2.weight",
                "proj_in.w2.bias",
                "emb_norm.weight",
                "layers.0.attention.wqkv.weight"
            ]
        );
        assert_eq!(
            params.last().unwrap().name,
            "head.net.final_layer.linear.bias"
        );
        assert!(decays("layers.3.attention.wqkv.weight", &[2304, 768]));
        assert!(!decays("proj_in.w1.weight", &[2304, 32]));
        assert!(!decays("query_token", &[1, 3, 768]));
        assert!(!decays("head.net.res_blocks.0.w1.bias", &[1728]));
    }
}
