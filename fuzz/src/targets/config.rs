//! `ModelConfig::from_json`: the model config JSON a weight file's `bitdance.config` metadata,
//! a checkpoint or a `--config` file holds, and the sizes derived from an accepted config.

use bitdance::model::{builtin_name, ModelConfig, BUILTIN_CONFIGS};

use super::{Outcome, Target};
use crate::mutate;
use crate::rng::Rng;

/// The target.
pub const TARGET: Target = Target {
    name: "config",
    about: "ModelConfig::from_json, then its derived sizes and a JSON round trip",
    run,
    mutate: mutate_json,
    dict: &[
        b"\"dim\"",
        b"\"n_head\"",
        b"\"down_size\"",
        b"\"patch_size\"",
        b"\"parallel_num\"",
        b"\"resolution\"",
        b"\"ch_mult\"",
        b"\"latent_dim\"",
        b"\"z_channels\"",
        b"[]",
        b"[1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
        b"null",
        b"-1",
        b"1e3",
        b"{}",
        b",",
    ],
    seeds,
};

fn run(data: &[u8]) -> Vec<Outcome> {
    let text = String::from_utf8_lossy(data);
    let c = match ModelConfig::from_json("fuzz.json", &text) {
        Ok(c) => c,
        Err(e) => return vec![Err(e.to_string())],
    };
    let again = ModelConfig::from_json("round trip", &c.to_json());
    assert_eq!(again.ok().as_ref(), Some(&c), "the JSON round trip changed the config");
    let sizes = [
        c.head_dim(),
        c.grid(),
        c.image_tokens(),
        c.patch_side(),
        c.ar_steps(),
        c.sequence_len(),
        c.token_dim(),
        c.ffn_hidden(),
        c.connector_hidden(),
    ];
    let name = builtin_name(&c).unwrap_or("custom");
    vec![Ok(format!("{name} {}", sizes.len()))]
}

/// Replaces one number of the JSON text by an interesting one, most of the time.
fn mutate_json(rng: &mut Rng, data: &[u8], _pool: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(3) {
        mutate::replace_number(rng, &mut out);
    }
    Some(out)
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = BUILTIN_CONFIGS
        .iter()
        .map(|name| {
            let c = ModelConfig::builtin(name).expect("built-in config");
            (format!("{name}.json"), c.to_json().into_bytes())
        })
        .collect();
    // Nasty: 13 autoencoder levels, a huge parallel_num, sizes whose products overflow.
    let mut c = ModelConfig::builtin("tiny").expect("tiny");
    c.vae.ch_mult = vec![1; 13];
    out.push(("levels-13.json".into(), c.to_json().into_bytes()));
    let tiny = ModelConfig::builtin("tiny").expect("tiny").to_json();
    let big = tiny.replace("\"parallel_num\": 4", "\"parallel_num\": 18446744073709551615");
    out.push(("parallel-max.json".into(), big.into_bytes()));
    let big = tiny.replace("\"patch_size\": 1", "\"patch_size\": 4611686018427387904");
    out.push(("patch-2e62.json".into(), big.into_bytes()));
    out
}
