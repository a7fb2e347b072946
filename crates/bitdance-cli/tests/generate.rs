//! `bitdance generate` end to end on a tiny random model: PNG grid, saved tensors, recorded
//! noise, and clear errors for bad classes and files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bitdance::io::WeightFile;
use bitdance::model::{
    ar_parameters, decoder_parameters, encoder_parameters, ModelConfig, ParamStore,
};
use bitdance::rng::Rng;

mod common;
use common::run_bitdance as bitdance;

/// A tiny next-patch model (4 tokens per step, 16 tokens, 5 classes).
fn tiny() -> ModelConfig {
    let mut c = ModelConfig::builtin("B-4x").unwrap();
    (c.dim, c.n_layer, c.n_head) = (16, 1, 2);
    (c.diff_layers, c.diff_dim, c.diff_adanln_layers) = (2, 64, 1);
    (c.resolution, c.down_size, c.cls_token_num, c.num_classes) = (8, 2, 2, 5);
    c.vae.ch = 32;
    c.vae.ch_mult = vec![1, 1];
    c.vae.num_res_blocks = 1;
    c.validate().unwrap();
    c
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bitdance-cli-generate-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes random weights of the tiny model with the config in the metadata; returns the path.
fn weights(dir: &Path) -> PathBuf {
    let c = tiny();
    let meta = BTreeMap::from([("bitdance.config".to_string(), c.to_json())]);
    let path = dir.join("tiny.safetensors");
    random_weights(&c, Some(&meta), 3, &path);
    path
}

/// Random weights of `c` (AR model and autoencoder) from `seed`, with `meta` (none: as a
/// converted official checkpoint is), written to `path`.
fn random_weights(
    c: &ModelConfig,
    meta: Option<&BTreeMap<String, String>>,
    seed: u64,
    path: &Path,
) {
    let gpu = pollster::block_on(bitdance::Gpu::from_env()).unwrap();
    let mut specs = ar_parameters(c);
    specs.extend(encoder_parameters(&c.vae));
    specs.extend(decoder_parameters(&c.vae));
    let store = ParamStore::random(&gpu, &specs, &mut Rng::new(seed), 0.2).unwrap();
    let bytes = pollster::block_on(store.to_safetensors(meta)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn generate_writes_a_grid_tensors_and_replays_noise() {
    // A folder of its own: the tests run side by side, and each removes its folder at the end.
    let d = dir().join("grid");
    std::fs::create_dir_all(&d).unwrap();
    let w = weights(&d);
    let (w, png, st) = (
        w.to_str().unwrap(),
        d.join("out.png"),
        d.join("out.safetensors"),
    );
    let (ok, text) = bitdance(&[
        "generate",
        "--weights",
        w,
        "-c",
        "1",
        "-c",
        "4",
        "--per-class",
        "2",
        "--steps",
        "2",
        "--batch",
        "3",
        "--cfg",
        "2",
        "-o",
        png.to_str().unwrap(),
        "--save-tensors",
        st.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("4 image(s) of 8x8, classes 1, 1, 4, 4"),
        "{text}"
    );
    assert!(
        text.contains("s per image") && text.contains("adapter:"),
        "{text}"
    );
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(
        img.dimensions(),
        (18, 18),
        "2x2 grid of 8x8 with a 2-pixel gap"
    );
    let bytes = std::fs::read(&st).unwrap();
    let file = WeightFile::parse(&bytes).unwrap();
    assert_eq!(file.shape("tokens").unwrap(), &[4, 32, 4, 4]);
    assert_eq!(file.shape("image").unwrap(), &[4, 3, 8, 8]);
    let tokens = file.to_f32("tokens").unwrap();
    assert!(tokens.iter().all(|v| *v == 1.0 || *v == -1.0));
    // The PNG holds the saved image converted the official way.
    let image = file.to_f32("image").unwrap();
    let level = (127.5 * image[0] + 128.0).clamp(0.0, 255.0) as u8;
    assert_eq!(img.get_pixel(0, 0).0[0], level);

    // Recorded noise of zeros: a deterministic run; the wrong row count is named.
    let c = tiny();
    let (p, k, steps) = (c.parallel_num, c.token_dim(), 2);
    let mut host: Vec<(String, Vec<usize>)> = Vec::new();
    for s in 0..c.ar_steps() {
        let rows = if s == 0 { 2 } else { 1 };
        host.push((format!("x0.{s}"), vec![rows, p, k]));
        host.push((format!("eps.{s}"), vec![steps, rows, p, k]));
    }
    let zeros: Vec<Vec<f32>> = host
        .iter()
        .map(|(_, s)| vec![0.0; s.iter().product()])
        .collect();
    let views: Vec<(&str, &[usize], &[f32])> = host
        .iter()
        .zip(&zeros)
        .map(|((n, s), z)| (n.as_str(), s.as_slice(), z.as_slice()))
        .collect();
    let noise = d.join("noise.safetensors");
    std::fs::write(
        &noise,
        bitdance::io::save_safetensors(&views, None).unwrap(),
    )
    .unwrap();
    let run = |classes: &[&str]| {
        let mut args = vec!["generate", "--weights", w, "--steps", "2", "--cfg", "3"];
        for c in classes {
            args.extend(["-c", c]);
        }
        args.extend([
            "--noise",
            noise.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
        ]);
        bitdance(&args)
    };
    let (ok, text) = run(&["2"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["2", "3"]);
    assert!(!ok);
    assert!(text.contains("'x0.0' has shape [2, 4, 32]"), "{text}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_file_without_a_config_is_known_by_its_shapes_as_the_apps_know_it() {
    let d = dir().join("no-config");
    std::fs::create_dir_all(&d).unwrap();
    // The released tiny config's tensors, no metadata: found by shapes, no --config needed.
    let plain = d.join("plain.safetensors");
    random_weights(&ModelConfig::builtin("tiny").unwrap(), None, 4, &plain);
    let out = d.join("plain.png");
    let (ok, text) = bitdance(&[
        "generate",
        "--weights",
        plain.to_str().unwrap(),
        "-c",
        "1",
        "--steps",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(ok && out.exists(), "{text}");
    // Shapes of no released config: refused naming the file and what to give.
    let custom = d.join("custom.safetensors");
    random_weights(&tiny(), None, 4, &custom);
    let (ok, text) = bitdance(&["generate", "--weights", custom.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("custom.safetensors") && text.contains("give --config"),
        "{text}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_classes_and_files_are_named() {
    let d = dir().join("bad");
    std::fs::create_dir_all(&d).unwrap();
    let w = weights(&d);
    let w = w.to_str().unwrap();
    let (ok, text) = bitdance(&["generate", "--weights", w, "-c", "5"]);
    assert!(!ok);
    assert!(
        text.contains("class index 5 is out of range: the model has 5 classes"),
        "{text}"
    );
    let (ok, text) = bitdance(&["generate", "--weights", w, "-c", "tench"]);
    assert!(!ok);
    assert!(text.contains("this model stores no class names"), "{text}");
    let missing = d.join("nope.safetensors");
    let (ok, text) = bitdance(&["generate", "--weights", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("reading") && text.contains("nope.safetensors"),
        "{text}"
    );
    let truncated = d.join("truncated.safetensors");
    let bytes = std::fs::read(w).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, text) = bitdance(&["generate", "--weights", truncated.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("truncated.safetensors"), "{text}");
    let (ok, text) = bitdance(&["generate", "--weights", w, "--config", "B-4x", "-c", "0"]);
    assert!(!ok);
    assert!(
        text.contains("missing: 'layers.1.attention.wqkv.weight'"),
        "{text}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bench_generate_times_full_runs_of_the_given_weights() {
    let d = dir().join("bench");
    std::fs::create_dir_all(&d).unwrap();
    let w = weights(&d);
    let w = w.to_str().unwrap();
    let args = [
        "bench",
        "generate",
        "--weights",
        w,
        "--steps",
        "3",
        "--repeats",
        "3",
        "--json",
    ];
    let (ok, text) = bitdance(&args);
    assert!(ok, "{text}");
    let line = text.lines().find(|l| l.starts_with('{')).expect(&text);
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let num = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {line}"));
    assert_eq!(
        (v["repeats"].as_u64(), v["head_steps"].as_u64()),
        (Some(3), Some(3))
    );
    // A file without a built-in name gets cfg 4; the config comes from the file's metadata.
    assert_eq!(num("cfg"), 4.0);
    assert!(
        num("seconds_per_image_min") <= num("seconds_per_image"),
        "{line}"
    );
    assert!(
        num("seconds_per_image") > 0.0 && num("decoder_s") > 0.0,
        "{line}"
    );
    let split = num("transformer_s") + num("head_s");
    assert!((split - num("ar_loop_s")).abs() < 1e-9, "{line}");
    assert!(
        num("peak_gpu_mib") > 0.0 && num("first_run_1_step_s") > 0.0,
        "{line}"
    );
    let (ok, text) = bitdance(&["bench", "generate", "--weights", w, "--steps", "0"]);
    assert!(!ok && text.contains("--steps"), "{text}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_headless_run_prints_no_error_lines() {
    let d = dir().join("headless");
    std::fs::create_dir_all(&d).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitdance"))
        .args(["generate", "-c", "3", "--steps", "2", "-o"])
        .arg(d.join("digit.png"))
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("error"),
        "a successful run printed:\n{stderr}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn careless_output_and_batch_options_are_refused_before_any_work() {
    let d = dir().join("careless");
    std::fs::create_dir_all(&d).unwrap();
    let out = |name: &str| d.join(name).to_str().unwrap().to_string();
    let (ok, text) = bitdance(&["generate", "-c", "1", "--batch", "0", "-o", &out("a.png")]);
    assert!(!ok && text.contains("--batch must be at least 1"), "{text}");
    let (ok, text) = bitdance(&["generate", "-c", "1", "-o", &out("a.gif")]);
    assert!(
        !ok && text.contains("a.gif") && text.contains(".png or .jpg"),
        "{text}"
    );
    let (ok, text) = bitdance(&["generate", "-c", "1", "-o", &out("missing/a.png")]);
    assert!(
        !ok && text.contains("is not writable") && !text.contains("s per image"),
        "{text}"
    );
    let (ok, text) = bitdance(&["generate", "-c", "1", "--per-class", "1000000000"]);
    assert!(!ok && text.contains("GiB of host memory"), "{text}");
    // A billion head steps would allocate their grid up front: refused, naming the bound.
    let (ok, text) = bitdance(&["generate", "-c", "1", "--steps", "1000000000"]);
    assert!(
        !ok && text.contains("--steps 1000000000") && text.contains("between 1 and 10000"),
        "{text}"
    );
    let (ok, text) = bitdance(&["generate", "-c", "1", "--cfg", "inf"]);
    assert!(!ok && text.contains("guidance scale inf"), "{text}");
    // A .jpg output is a JPEG.
    let (ok, text) = bitdance(&["generate", "-c", "1", "--steps", "2", "-o", &out("a.JPG")]);
    assert!(ok, "{text}");
    let bytes = std::fs::read(out("a.JPG")).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "JPEG magic");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_weight_file_holding_a_nan_is_refused_naming_the_tensor() {
    let d = dir().join("nan");
    std::fs::create_dir_all(&d).unwrap();
    let bytes = std::fs::read(weights(&d)).unwrap();
    let file = WeightFile::parse(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .names()
        .into_iter()
        .map(|name| {
            let mut values = file.to_f32(&name).unwrap();
            if name == "norm.weight" {
                values[3] = f32::NAN;
            }
            let shape = file.shape(&name).unwrap().to_vec();
            (name, shape, values)
        })
        .collect();
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    let poisoned = d.join("poisoned.safetensors");
    let meta = file.metadata();
    std::fs::write(
        &poisoned,
        bitdance::io::save_safetensors(&refs, Some(&meta)).unwrap(),
    )
    .unwrap();
    let out = d.join("never.png");
    let (ok, text) = bitdance(&[
        "generate",
        "--weights",
        poisoned.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("'norm.weight'") && text.contains("non-finite") && text.contains("element 3"),
        "{text}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn oversized_configs_are_refused_with_the_figure_before_anything_is_allocated() {
    let d = dir().join("oversized");
    std::fs::create_dir_all(&d).unwrap();
    // A 4.9 MB file's metadata claiming 3,000,000 layers: refused by key, naming the file.
    let mut huge = tiny();
    huge.n_layer = 3_000_000;
    let meta = BTreeMap::from([("bitdance.config".to_string(), huge.to_json())]);
    let bytes = bitdance::io::save_safetensors(&[("x", &[1], &[0.0])], Some(&meta)).unwrap();
    let file = d.join("claims-3m-layers.safetensors");
    std::fs::write(&file, bytes).unwrap();
    let start = std::time::Instant::now();
    let (ok, text) = bitdance(&["generate", "--weights", file.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("claims-3m-layers.safetensors")
            && text.contains("'bitdance.config'")
            && text.contains("n_layer 3000000 is above the largest supported value"),
        "{text}"
    );
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    // Config files with a width of 1e9 (train, bench) or 3.2e8 autoencoder channels.
    let mut wide = tiny();
    wide.dim = 1_000_000_000;
    let wide_path = d.join("wide.json");
    std::fs::write(&wide_path, wide.to_json()).unwrap();
    let wide_s = wide_path.to_str().unwrap();
    let (ok, text) = bitdance(&["bench", "train", "--config", wide_s]);
    assert!(!ok && text.contains("dim 1000000000 is above"), "{text}");
    let mut channels = tiny();
    channels.vae.ch = 320_000_000;
    let ch_path = d.join("channels.json");
    std::fs::write(&ch_path, channels.to_json()).unwrap();
    let out = d.join("run");
    let (ok, text) = bitdance(&[
        "train-tokenizer",
        "--data",
        d.to_str().unwrap(),
        "--config",
        ch_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("vae.ch 320000000 is above"), "{text}");
    // Within every bound but too large for the memory budget: refused with the estimate.
    let mut big = ModelConfig::builtin("H-1x").unwrap();
    (big.dim, big.diff_dim, big.n_layer, big.n_head) = (16384, 16384, 512, 128);
    big.validate().unwrap();
    let big_path = d.join("big.json");
    std::fs::write(&big_path, big.to_json()).unwrap();
    // A batch of 10^8 images of the tiny model: refused with the estimate, nothing allocated.
    let (ok, text) = bitdance(&["bench", "train", "--batch", "100000000"]);
    assert!(
        !ok && text.contains("training this model on batches of 100000000 needs about"),
        "{text}"
    );
    let (ok, text) = bitdance(&["bench", "train", "--config", big_path.to_str().unwrap()]);
    assert!(
        !ok && text.contains("needs about") && text.contains("memory budget of 16.00 GiB"),
        "{text}"
    );
    // The budget is the user's to set; the embedded default model needs more than 1 MiB.
    let out = Command::new(env!("CARGO_BIN_EXE_bitdance"))
        .args(["generate", "-c", "1", "--steps", "1"])
        .env("BITDANCE_MEMORY_BUDGET_GIB", "0.001")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("more than the memory budget of 1.0 MiB"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bitdance"))
        .args(["generate", "-c", "1", "--steps", "1"])
        .env("BITDANCE_MEMORY_BUDGET_GIB", "lots")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("BITDANCE_MEMORY_BUDGET_GIB=lots"),
        "{text}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_png_carries_its_recipe_and_the_recipe_reproduces_it() {
    let d = dir().join("recipe");
    std::fs::create_dir_all(&d).unwrap();
    let w = weights(&d);
    let (w, first, again) = (
        w.to_str().unwrap(),
        d.join("first.png"),
        d.join("again.png"),
    );
    let args = [
        "generate",
        "--weights",
        w,
        "-c",
        "1",
        "-c",
        "3",
        "--per-class",
        "2",
    ];
    let (ok, text) = bitdance(
        &[
            &args[..],
            &[
                "--seed",
                "9",
                "--batch",
                "3",
                "--steps",
                "4",
                "-o",
                first.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(ok, "{text}");
    let png = std::fs::read(&first).unwrap();
    let recipe = bitdance::studio::Recipe::from_png("first.png", &png).unwrap();
    assert_eq!(recipe.classes, [1, 1, 3, 3]);
    assert_eq!((recipe.batch, recipe.seed, recipe.head_steps), (3, 9, 4));
    assert_eq!(
        recipe.model_sha256,
        bitdance::studio::sha256_hex(&std::fs::read(w).unwrap())
    );

    // The recipe alone re-runs it: the same tokens, the same file.
    let (ok, text) = bitdance(&[
        "generate",
        "--weights",
        w,
        "--recipe",
        first.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(
        ok && text.contains("reproduced: the tokens match"),
        "{text}"
    );
    assert_eq!(std::fs::read(&again).unwrap(), png);

    // Another model is refused by its SHA-256; a recipe whose tokens differ is reported.
    let (ok, text) = bitdance(&[
        "generate",
        "--recipe",
        first.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(
        !ok && text.contains("SHA-256") && text.contains("--weights"),
        "{text}"
    );
    let mut other = recipe.clone();
    other.token_hash = "0".repeat(64);
    let forged = d.join("forged.png");
    std::fs::write(&forged, other.into_png(&png).unwrap()).unwrap();
    let (ok, text) = bitdance(&[
        "generate",
        "--weights",
        w,
        "--recipe",
        forged.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("NOT reproduced"), "{text}");
    // A recipe and sampling options together are refused by the parser.
    let (ok, text) = bitdance(&[
        "generate",
        "--recipe",
        first.to_str().unwrap(),
        "--seed",
        "1",
    ]);
    assert!(!ok && text.contains("cannot be used with"), "{text}");
}

#[test]
fn a_copy_of_the_default_model_samples_with_its_settings() {
    let d = dir().join("default-copy");
    std::fs::create_dir_all(&d).unwrap();
    let (copy, out) = (d.join("copy.safetensors"), d.join("copy.png"));
    std::fs::write(&copy, bitdance::model::DEFAULT_MODEL_BYTES).unwrap();
    let args = ["generate", "--weights", copy.to_str().unwrap(), "-c", "3"];
    let (ok, text) = bitdance(&[&args[..], &["-o", out.to_str().unwrap()]].concat());
    assert!(ok, "{text}");
    let recipe =
        bitdance::studio::Recipe::from_png("copy.png", &std::fs::read(&out).unwrap()).unwrap();
    // The evaluated settings of the default model (cfg 3, 50 head steps), not the generic
    // cfg 4 and 100 steps of an unknown model.
    let evaluated = bitdance::model::recommended_settings(Some("default"));
    assert_eq!(
        (recipe.cfg, recipe.head_steps),
        (evaluated.cfg, evaluated.head_steps)
    );
}
