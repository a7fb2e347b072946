//! The official initialisation of a fresh AR model and head: N(0, 0.02) for linears and
//! embeddings, ones and zeros for norms and biases, Xavier-uniform head linears, and zeroed
//! adaLN and output layers in the head.

use std::collections::BTreeSet;

use super::{
    ar_parameters, decoder_parameters, encoder_parameters, AeConfig, ModelConfig, ParamStore,
};
use crate::rng::Rng;
use crate::{DType, Gpu, Result, Tensor};

/// How one parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Init {
    Zeros,
    Ones,
    Normal(f32),
    XavierUniform,
}

fn rule(name: &str, shape: &[usize]) -> Init {
    if name.ends_with(".bias") {
        return Init::Zeros;
    }
    if shape.len() == 1 {
        return Init::Ones;
    }
    if let Some(head) = name.strip_prefix("head.net.") {
        if head.starts_with("ada_ln_blocks.") || head.starts_with("final_layer.") {
            return Init::Zeros;
        }
        if head.starts_with("time_embed.mlp.") {
            return Init::Normal(0.02);
        }
        return Init::XavierUniform;
    }
    Init::Normal(0.02)
}

/// Fresh parameters of `c`'s AR model and head, initialised as the official code does, drawn
/// from `rng` in parameter order; one over a storage binding is held in row chunks.
pub fn init_parameters(gpu: &Gpu, c: &ModelConfig, rng: &mut Rng) -> Result<ParamStore> {
    init_parameters_in(gpu, c, rng, &BTreeSet::new())
}

/// `init_parameters`, holding the parameters named in `half` in 16 bits where their kernels
/// read them so (a frozen base).
pub fn init_parameters_in(
    gpu: &Gpu,
    c: &ModelConfig,
    rng: &mut Rng,
    half: &BTreeSet<String>,
) -> Result<ParamStore> {
    gpu.check_memory(&c.ar_weights_memory())?;
    // A table over one storage binding (the B class table) is held in row chunks.
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let mut store = ParamStore::new();
    for spec in ar_parameters(c) {
        let n: usize = spec.shape.iter().product();
        let data: Vec<f32> = match rule(&spec.name, &spec.shape) {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => rng.normal_vec(n).iter().map(|v| v * std).collect(),
            Init::XavierUniform => {
                let (fan_out, fan_in) = (spec.shape[0], spec.shape[1]);
                let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                rng.uniform_vec(n, -a, a)
            }
        };
        store.upload(gpu, &spec, &data, limit, half.contains(&spec.name))?;
    }
    Ok(store)
}

/// Fresh autoencoder parameters (`vae.encoder.*`, `vae.decoder.*`) with PyTorch's default
/// initialisation, as the official autoencoder uses: conv and linear weights and biases
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), GroupNorm weights 1 and biases 0.
pub fn init_autoencoder(gpu: &Gpu, ae: &AeConfig, rng: &mut Rng) -> Result<ParamStore> {
    gpu.check_memory(&ae.weights_memory())?;
    let mut store = ParamStore::new();
    let specs: Vec<_> = encoder_parameters(ae)
        .into_iter()
        .chain(decoder_parameters(ae))
        .collect();
    for spec in &specs {
        let n: usize = spec.shape.iter().product();
        let is_norm = spec.name.contains("norm");
        let data = if is_norm && spec.name.ends_with(".weight") {
            vec![1.0; n]
        } else if is_norm {
            vec![0.0; n]
        } else {
            // A bias takes the fan-in of its layer's weight.
            let weight = spec.name.trim_end_matches(".bias").to_string() + ".weight";
            let fan_in: usize = specs
                .iter()
                .find(|s| s.name == weight)
                .map_or(1, |w| w.shape[1..].iter().product());
            let a = 1.0 / (fan_in as f32).sqrt();
            rng.uniform_vec(n, -a, a)
        };
        store.insert(
            &spec.name,
            Tensor::weight_from_f32(gpu, &spec.shape, &data, DType::F32)?,
        );
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::{rule, Init};

    #[test]
    fn rules_follow_the_official_initialisation() {
        assert_eq!(
            rule("layers.0.attention.wqkv.weight", &[6, 2]),
            Init::Normal(0.02)
        );
        assert_eq!(rule("cls_embedding.weight", &[6, 2]), Init::Normal(0.02));
        assert_eq!(rule("query_token", &[1, 3, 2]), Init::Normal(0.02));
        assert_eq!(rule("emb_norm.weight", &[2]), Init::Ones);
        assert_eq!(rule("proj_in.w1.bias", &[2]), Init::Zeros);
        assert_eq!(
            rule("head.net.res_blocks.0.w1.weight", &[6, 2]),
            Init::XavierUniform
        );
        assert_eq!(rule("head.net.res_blocks.0.norm1.bias", &[2]), Init::Zeros);
        assert_eq!(
            rule("head.net.ada_ln_blocks.1.weight", &[6, 2]),
            Init::Zeros
        );
        assert_eq!(
            rule("head.net.final_layer.linear.weight", &[6, 2]),
            Init::Zeros
        );
        assert_eq!(
            rule("head.net.time_embed.mlp.2.weight", &[2, 2]),
            Init::Normal(0.02)
        );
    }
}
