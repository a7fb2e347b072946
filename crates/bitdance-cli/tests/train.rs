//! Training from the command line on a tiny dataset: the tokenizer and the AR model train,
//! a run stopped and resumed equals an uninterrupted one byte for byte, a run killed at any
//! moment leaves a readable checkpoint that resumes, and the result generates images.

use std::path::{Path, PathBuf};
use std::process::Command;

use bitdance::io::WeightFile;
use bitdance::model::ModelConfig;
use bitdance::rng::Rng;

mod common;
use common::run_bitdance;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bitdance-cli-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Two classes of 8x8 images: bright squares and dark rings, with noise.
fn dataset(root: &Path) -> PathBuf {
    let data = root.join("data");
    let mut rng = Rng::new(5);
    for (k, name) in ["0-square", "1-ring"].iter().enumerate() {
        let d = data.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..3 {
            let img = image::RgbImage::from_fn(8, 8, |x, y| {
                let edge = x == 1 || x == 6 || y == 1 || y == 6;
                let inside = (1..7).contains(&x) && (1..7).contains(&y);
                let on = if k == 0 { inside } else { edge && inside };
                let v = if on { 220 } else { 30 } as f64 + 20.0 * rng.normal();
                let v = v.clamp(0.0, 255.0) as u8;
                image::Rgb([v, v, v])
            });
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
    data
}

fn config(root: &Path) -> PathBuf {
    let mut c = ModelConfig::builtin("tiny").unwrap();
    (c.dim, c.n_layer, c.n_head) = (16, 1, 2);
    (c.diff_layers, c.diff_dim, c.diff_adanln_layers) = (2, 64, 1);
    (c.resolution, c.down_size, c.cls_token_num, c.num_classes) = (8, 2, 2, 2);
    c.vae.ch_mult = vec![1, 1];
    c.validate().unwrap();
    let path = root.join("config.json");
    std::fs::write(&path, c.to_json()).unwrap();
    path
}

/// Runs the CLI expecting success; returns what it printed.
fn bitdance(args: &[&str]) -> String {
    let (ok, text) = run_bitdance(args);
    assert!(ok, "bitdance {args:?} failed:\n{text}");
    text
}

/// Runs the CLI expecting a failure; returns what it printed.
fn bitdance_fails(args: &[&str]) -> String {
    let (ok, text) = run_bitdance(args);
    assert!(!ok, "bitdance {args:?} succeeded:\n{text}");
    text
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn tokenizer_then_ar_model_train_resume_exactly_and_generate() {
    let root = dir("e2e");
    let (data, cfg) = (dataset(&root), config(&root));
    let (data, cfg) = (data.to_str().unwrap(), cfg.to_str().unwrap());
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Tokenizer: straight 6 steps, and 3 + resume + 3, must give identical files.
    let tok_args: Vec<&str> = vec![
        "train-tokenizer",
        "--data",
        data,
        "--config",
        cfg,
        "--steps",
        "6",
        "--batch",
        "2",
        "--lr",
        "1e-3",
        "--warmup",
        "1",
        "--checkpoint-every",
        "2",
        "--sample-every",
        "0",
    ];
    let tok = |out: &Path, extra: &[&str]| {
        let o = s(out);
        let mut args = tok_args.clone();
        args.extend(["--out", &o]);
        args.extend_from_slice(extra);
        bitdance(&args)
    };
    let (straight, split) = (root.join("tok-a"), root.join("tok-b"));
    tok(&straight, &[]);
    let text = tok(&split, &["--stop-after", "3"]);
    assert!(text.contains("stopped after step 3"), "{text}");
    // A pause point the run has passed is refused, not run through to the end.
    let split_out = s(&split);
    let mut passed = tok_args.clone();
    passed.extend(["--resume", "--stop-after", "2", "--out", &split_out]);
    let err = bitdance_fails(&passed);
    assert!(
        err.contains("--stop-after 2") && err.contains("already at step 3"),
        "{err}"
    );
    // Resuming with other batch options would draw other batches: refused, naming both.
    let mut wrong = vec![
        "train-tokenizer",
        "--data",
        data,
        "--config",
        cfg,
        "--resume",
    ];
    let split_s = s(&split);
    wrong.extend([
        "--out",
        &split_s,
        "--steps",
        "6",
        "--batch",
        "2",
        "--lr",
        "1e-3",
        "--warmup",
        "1",
        "--no-flip",
    ]);
    let err = bitdance_fails(&wrong);
    assert!(
        err.contains("started with --batch 2, flips on") && err.contains("flips off"),
        "{err}"
    );
    // So would another learning-rate schedule (it comes from the checkpoint).
    let other_lr = bitdance_fails(&[
        "train-tokenizer",
        "--data",
        data,
        "--config",
        cfg,
        "--resume",
        "--out",
        &split_s,
        "--steps",
        "6",
        "--batch",
        "2",
        "--lr",
        "5e-4",
        "--warmup",
        "1",
    ]);
    assert!(
        other_lr.contains("--lr 0.001 (given: 0.0005)"),
        "{other_lr}"
    );
    // Every other option that decides the steps is checked the same way, several at once.
    let mut other_seed = tok_args.clone();
    other_seed.extend(["--resume", "--out", &split_s, "--seed", "7", "--ema", "0.9"]);
    other_seed.extend(["--l1", "2"]);
    let err = bitdance_fails(&other_seed);
    assert!(
        err.contains("--ema 0.999 (given: 0.9)")
            && err.contains("--seed 0 (given: 7)")
            && err.contains("--l1 1 (given: 2)"),
        "{err}"
    );
    // A tokenizer run is not resumed by `train` (it used to fail with "the parameter store is
    // empty"); the message names the command that continues it.
    let err = bitdance_fails(&[
        "train",
        "--data",
        data,
        "--tokenizer",
        &s(&straight.join("model.safetensors")),
        "--resume",
        "--out",
        &split_s,
    ]);
    assert!(
        err.contains("holds a run of `bitdance train-tokenizer`")
            && err.contains("bitdance train-tokenizer --resume"),
        "{err}"
    );
    // Resumed without --config: the checkpoint's config (not the default `tiny`) is used.
    let split_s2 = s(&split);
    let no_config: Vec<&str> = tok_args
        .iter()
        .copied()
        .filter(|a| *a != "--config" && *a != cfg)
        .chain(["--out", &split_s2, "--resume"])
        .collect();
    bitdance(&no_config);
    for file in ["checkpoint.safetensors", "model.safetensors"] {
        assert_eq!(
            std::fs::read(straight.join(file)).unwrap(),
            std::fs::read(split.join(file)).unwrap(),
            "{file}: 3 steps + resume + 3 steps differ from 6 steps"
        );
    }
    assert_eq!(losses(&straight), losses(&split));

    // AR model on the tokenizer's tokens: the loss falls, then it generates. It stops at step
    // 20, its token cache is cut short (same fingerprint), and the resumed run re-encodes it.
    let ar = root.join("ar");
    let tokenizer = s(&straight.join("model.safetensors"));
    let ar_s = s(&ar);
    let ar_args: &[&str] = &[
        "train",
        "--data",
        data,
        "--config",
        cfg,
        "--tokenizer",
        &tokenizer,
        "--out",
        &ar_s,
        "--steps",
        "40",
        "--batch",
        "4",
        "--lr",
        "3e-3",
        "--warmup",
        "2",
        "--checkpoint-every",
        "20",
        "--sample-every",
        "40",
        "--sample-steps",
        "2",
    ];
    let mut first_half = ar_args.to_vec();
    first_half.extend(["--stop-after", "20"]);
    bitdance(&first_half);
    let cache_path = ar.join("latents.safetensors");
    let cache = std::fs::read(&cache_path).unwrap();
    let cache = WeightFile::parse(&cache).unwrap();
    let tokens = cache.to_f32("tokens").unwrap();
    let shape = cache.shape("tokens").unwrap().to_vec();
    let short = [shape[0] / 2, shape[1], shape[2]];
    let labels = cache.to_f32("labels").unwrap();
    let cut = bitdance::io::save_safetensors(
        &[
            ("tokens", &short, &tokens[..tokens.len() / 2]),
            ("labels", &[labels.len()], &labels),
        ],
        Some(&cache.metadata()),
    )
    .unwrap();
    std::fs::write(&cache_path, cut).unwrap();
    let mut resumed = ar_args.to_vec();
    resumed.push("--resume");
    let text = bitdance(&resumed);
    assert!(
        text.contains("unusable") && text.contains("encoding the dataset again"),
        "{text}"
    );
    let l = losses(&ar);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&l[..8]), mean(&l[l.len() - 8..]));
    assert!(last < 0.7 * first, "AR loss {first} -> {last}");
    assert!(ar.join("samples/step-0000040.png").exists());
    let model = std::fs::read(ar.join("model.safetensors")).unwrap();
    let file = WeightFile::parse(&model).unwrap();
    assert!(file.metadata()["bitdance.classes"].contains("ring"));
    let png = s(&root.join("out.png"));
    let text = bitdance(&[
        "generate",
        "--weights",
        &s(&ar.join("model.safetensors")),
        "-c",
        "ring",
        "--steps",
        "2",
        "-o",
        &png,
    ]);
    assert!(text.contains("1 (ring)"), "{text}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_killed_run_leaves_a_readable_checkpoint_that_resumes() {
    let root = dir("kill");
    let (data, cfg) = (dataset(&root), config(&root));
    let out = root.join("run");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "train-tokenizer",
            "--data",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "100000",
            "--batch",
            "2",
            "--checkpoint-every",
            "1",
            "--sample-every",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut last_step = 0;
    for (round, wait_ms) in [1500u64, 900, 1300].into_iter().enumerate() {
        let extra: &[&str] = if round == 0 { &[] } else { &["--resume"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_bitdance"))
            .args(args(extra))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a checkpoint beyond the last one, then kill without warning.
        let start = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(wait_ms / 10));
            let step = std::fs::read(out.join("checkpoint.safetensors"))
                .ok()
                .and_then(|b| {
                    let f = WeightFile::parse(&b).ok()?;
                    let t: serde_json::Value =
                        serde_json::from_str(&f.metadata()["bitdance.train"]).ok()?;
                    t["step"].as_u64()
                });
            if step.is_some_and(|s| s > last_step) && start.elapsed().as_millis() as u64 > wait_ms {
                break;
            }
            assert!(start.elapsed().as_secs() < 120, "no checkpoint progress");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let bytes = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
        let file = WeightFile::parse(&bytes).expect("the checkpoint survives a kill");
        let t: serde_json::Value =
            serde_json::from_str(&file.metadata()["bitdance.train"]).unwrap();
        let step = t["step"].as_u64().unwrap();
        assert!(
            step > last_step,
            "round {round}: step {step} after {last_step}"
        );
        last_step = step;
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_hyper_parameters_are_refused_up_front_by_name() {
    let root = dir("bad-options");
    let data = dataset(&root);
    let data = data.to_str().unwrap();
    let out = root.join("run");
    let out = out.to_str().unwrap();
    let refused = |command: &str, option: &str, value: &str| {
        let mut args = vec![command, "--data", data, "--out", out, option, value];
        if command == "train" {
            args.extend(["--tokenizer", "never-read.safetensors", "--config", "tiny"]);
        }
        let output = Command::new(env!("CARGO_BIN_EXE_bitdance"))
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            text.contains(&format!("{option} ")) && text.contains("must"),
            "{args:?}: {text}"
        );
    };
    for (option, value) in [
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "1e10"),
        ("--lr", "0"),
        ("--min-lr", "1"),
        ("--ema", "nan"),
        ("--ema", "1"),
        ("--batch", "0"),
        ("--steps", "0"),
        ("--checkpoint-every", "0"),
        ("--stop-after", "0"),
    ] {
        refused("train-tokenizer", option, value);
        refused("train", option, value);
    }
    for (option, value) in [
        ("--perturb-rate", "nan"),
        ("--perturb-rate", "2"),
        ("--diff-batch-mul", "0"),
        ("--sample-steps", "0"),
        ("--sample-steps", "100000"),
        ("--sample-cfg", "nan"),
    ] {
        refused("train", option, value);
    }
    for (option, value) in [
        ("--l1", "nan"),
        ("--mse", "inf"),
        ("--commitment", "inf"),
        ("--entropy", "NaN"),
    ] {
        refused("train-tokenizer", option, value);
    }
    // A 16-bit frozen base where nothing is frozen: refused, not ignored.
    let tokenizer = "never-read.safetensors";
    let train = [
        "train",
        "--data",
        data,
        "--out",
        out,
        "--tokenizer",
        tokenizer,
    ];
    let bench = ["bench", "train", "--repeats", "1"];
    for args in [&train[..], &bench[..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_bitdance"))
            .args(args)
            .args(["--config", "tiny", "--half-base"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?} --half-base was accepted"
        );
        assert!(
            text.contains("--half-base") && text.contains("--train full freezes nothing"),
            "{args:?}: {text}"
        );
    }
    assert!(
        !Path::new(out).exists(),
        "nothing is written for a refused run"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_new_run_never_replaces_an_existing_one_silently() {
    let root = dir("existing");
    let data = dataset(&root);
    let cfg = config(&root);
    let run = root.join("run");
    let (data, cfg, run_s) = (
        data.to_str().unwrap(),
        cfg.to_str().unwrap(),
        run.to_str().unwrap(),
    );
    let args = [
        "train-tokenizer",
        "--data",
        data,
        "--out",
        run_s,
        "--config",
        cfg,
        "--steps",
        "2",
        "--batch",
        "2",
        "--sample-every",
        "0",
    ];
    bitdance(&args);
    let checkpoint = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let log = std::fs::read(run.join("log.jsonl")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bitdance"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a second run was started over the first"
    );
    assert!(
        text.contains("--resume") && text.contains("--overwrite"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        checkpoint
    );
    assert_eq!(std::fs::read(run.join("log.jsonl")).unwrap(), log);
    let mut again = args.to_vec();
    again.push("--overwrite");
    bitdance(&again);
    std::fs::remove_dir_all(&root).unwrap();
}

/// The digit model as a file and a folder of class folders to fine-tune it on: class folder
/// `name` gets the first `n` images of `assets/datasets/<from>`. Returns (model, folder).
fn finetune_inputs(root: &Path, classes: &[(&str, &str)], n: usize) -> (PathBuf, PathBuf) {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/datasets");
    let data = root.join("data");
    for (from, name) in classes {
        std::fs::create_dir_all(data.join(name)).unwrap();
        for i in 0..n {
            let file = format!("{i:04}.png");
            std::fs::copy(assets.join(from).join(&file), data.join(name).join(&file)).unwrap();
        }
    }
    let base = root.join("digits.safetensors");
    std::fs::write(&base, bitdance::model::DEFAULT_MODEL_BYTES).unwrap();
    (base, data)
}

/// The arguments of `bitdance finetune` from `base` on `data` into `out`, without sample grids
/// or mirroring, then `flags`.
fn finetune_args(base: &Path, data: &Path, out: &Path, flags: &[&str]) -> Vec<String> {
    let paths = [base, data, out].map(|p| p.display().to_string());
    let mut args: Vec<String> = ["finetune", "--init", &paths[0], "--data", &paths[1]]
        .into_iter()
        .chain(["--out", &paths[2], "--sample-every", "0", "--no-flip"])
        .map(String::from)
        .collect();
    args.extend(flags.iter().map(|f| f.to_string()));
    args
}

/// Runs `bitdance finetune` (see `finetune_args`); returns what it printed.
fn finetune(base: &Path, data: &Path, out: &Path, flags: &[&str]) -> String {
    let args = finetune_args(base, data, out, flags);
    bitdance(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A run started by the studios (the core's `FinetuneOptions` and `FinetuneRun`, written by
/// `RunDir`, as the desktop's Fine-tune panel does) continues with `bitdance finetune --resume`
/// given the options the panel shows, and takes the steps a CLI-only run takes.
#[test]
fn a_run_started_in_the_studio_continues_in_the_cli() {
    use bitdance::model::{DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL};
    use bitdance::train::{
        log_entry, start_finetune, ClassPolicy, FinetuneOptions, FinetuneRun, BASE_KEY,
    };
    use bitdance_files::dataset::ImageFolder;
    use bitdance_files::run_dir::RunDir;

    let root = dir("studio");
    let classes = [
        ("fashion-mnist/train/0-tshirt", "0-tshirt"),
        ("fashion-mnist/train/1-trouser", "1-trouser"),
    ];
    let (base, data) = finetune_inputs(&root, &classes, 3);
    let options = FinetuneOptions {
        steps: 4,
        batch: 2,
        lr: 1e-3,
        warmup: 1,
        ema: 0.9,
        seed: 5,
        flips: false,
        // The studio's steps recompute their blocks and the CLI's do not: the same steps.
        checkpointing: true,
        ..FinetuneOptions::default()
    };

    // Two steps in the studio's code, then its checkpoint.
    let studio = RunDir::new(root.join("studio-run"));
    let gpu = pollster::block_on(bitdance::Gpu::from_env()).unwrap();
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).unwrap();
    let folders = bitdance_files::dataset::class_folders(&data).unwrap();
    let default_sha = bitdance::studio::sha256_hex(DEFAULT_MODEL_BYTES);
    let (plan, trainer) = start_finetune(
        &gpu,
        &file,
        &default_sha,
        &folders,
        ClassPolicy::ByName,
        options.settings(),
    )
    .unwrap();
    let images = ImageFolder::load(&data, 32).unwrap().into_images();
    let mut run = pollster::block_on(FinetuneRun::encode(
        trainer,
        &images,
        plan,
        options.data(),
        false,
        &mut |_, _| {},
    ))
    .unwrap();
    let mut log = studio.open_log(0).unwrap();
    for _ in 0..2 {
        let stats = pollster::block_on(run.step()).unwrap();
        log.append(&log_entry(&stats, 1.0, 2)).unwrap();
    }
    studio.save(&run.trainer).unwrap();
    drop((run, log, gpu));

    // The panel's options as CLI flags (the final rate is a tenth of the peak, in decimal).
    let flags = [
        "--steps", "4", "--batch", "2", "--lr", "0.001", "--min-lr", "0.0001", "--warmup", "1",
        "--ema", "0.9", "--seed", "5",
    ];
    let resume: Vec<&str> = flags.iter().copied().chain(["--resume"]).collect();
    finetune(&base, &data, &studio.path, &resume);
    let cli_only = root.join("cli-run");
    finetune(&base, &data, &cli_only, &flags);
    let (continued, whole) = (losses(&studio.path), losses(&cli_only));
    assert_eq!(continued.len(), 4);
    // Both name their starting model by SHA-256, as the CLI always did.
    for run in [&studio.path, &cli_only] {
        let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
        let meta = WeightFile::parse(&bytes).unwrap().metadata();
        assert_eq!(meta.get(BASE_KEY), Some(&default_sha), "{}", run.display());
    }
    assert_eq!(
        continued, whole,
        "the studio's steps then the CLI's = the CLI's alone"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Fine-tuning the digit model on a folder named like one of its classes and one that is not:
/// the first trains its class, the second becomes class 10 (the table grown, its name saved);
/// the model generates the new class by name, resumes, and `--classes replace` keeps the old
/// mapping (folder i -> class i).
#[test]
fn a_folder_of_a_new_name_becomes_a_new_class() {
    let root = dir("grow");
    let classes = [
        ("mnist/train/3-3", "3"),
        ("fashion-mnist/train/7-sneaker", "my_sneaker"),
    ];
    let (base, data) = finetune_inputs(&root, &classes, 3);
    let run = root.join("run");
    let flags = ["--steps", "2", "--batch", "2", "--warmup", "1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        flags.iter().chain(extra).copied().collect()
    };
    let printed = finetune(&base, &data, &run, &with(&["--stop-after", "1"]));
    assert!(printed.contains("3 -> class 3 (3)"), "{printed}");
    assert!(
        printed.contains("my_sneaker -> class 10 (new: my_sneaker)"),
        "{printed}"
    );
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let model = WeightFile::parse_named("model", &bytes).unwrap();
    let table = model.shape("cls_embedding.weight").unwrap()[0];
    assert_eq!(table, 12, "10 + 1 new + null");
    let config = bitdance::model::stored_config(&model).unwrap().unwrap();
    assert_eq!(config.num_classes, 11);
    let names = bitdance::model::stored_class_names(&model).unwrap();
    assert_eq!((names.len(), names[10].as_str()), (11, "my_sneaker"));
    let png = root.join("sneaker.png");
    let weights = run.join("model.safetensors").display().to_string();
    let out = png.display().to_string();
    bitdance(&[
        "generate",
        "--weights",
        &weights,
        "-c",
        "my_sneaker",
        "--steps",
        "2",
        "-o",
        &out,
    ]);
    assert!(png.exists());
    // Resumed: the folder now names class 10, nothing grows again.
    let resumed = finetune(&base, &data, &run, &with(&["--resume"]));
    assert!(resumed.contains("classes (0 new)"), "{resumed}");
    // The old mapping on request.
    let replaced = root.join("replaced");
    let replaced = finetune(&base, &data, &replaced, &with(&["--classes", "replace"]));
    assert!(
        replaced.contains("my_sneaker -> class 1 (my_sneaker)"),
        "{replaced}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Four steps of 2 images (lr 0.01, 1 warmup step) with `what` (the `--train` flags) on the
/// sneaker folder: run whole into `root/whole`, and into `root/split` stopped after step 2
/// and resumed (with `resume_extra` added); asserts the two took the same steps and returns
/// the base model, the data, the whole run's folder and what it printed.
fn whole_and_resumed(
    root: &Path,
    what: &[&str],
    resume_extra: &[&str],
) -> (PathBuf, PathBuf, PathBuf, String) {
    let (base, data) = finetune_inputs(root, &[("fashion-mnist/train/7-sneaker", "sneaker")], 4);
    let common = [
        "--steps", "4", "--batch", "2", "--warmup", "1", "--lr", "0.01",
    ];
    let flags: Vec<&str> = common.iter().chain(what).copied().collect();
    let whole = root.join("whole");
    let printed = finetune(&base, &data, &whole, &flags);
    let split = root.join("split");
    let stop: Vec<&str> = flags.iter().copied().chain(["--stop-after", "2"]).collect();
    finetune(&base, &data, &split, &stop);
    let resume: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["--resume"])
        .chain(resume_extra.iter().copied())
        .collect();
    finetune(&base, &data, &split, &resume);
    assert_eq!(losses(&split), losses(&whole), "resumed exactly");
    (base, data, whole, printed)
}

/// The names in the checkpoint of the run in `dir`, and those of its first AdamW moments.
fn checkpoint_moments(dir: &Path) -> (Vec<String>, Vec<String>) {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let names = WeightFile::parse_named("checkpoint", &bytes)
        .unwrap()
        .names();
    let moments = names
        .iter()
        .filter(|n| n.starts_with("optim.m."))
        .cloned()
        .collect();
    (names, moments)
}

/// `--train embeddings` adds a class by training the class table alone: every other tensor of
/// the model comes out exactly as it went in, the class rows change, and the run resumes exactly.
#[test]
fn embeddings_training_changes_the_class_table_alone_and_resumes_exactly() {
    let root = dir("embeddings");
    let (_, _, whole, _) = whole_and_resumed(&root, &["--train", "embeddings"], &[]);

    let base_file = WeightFile::parse_named("base", bitdance::model::DEFAULT_MODEL_BYTES).unwrap();
    let bytes = std::fs::read(whole.join("model.safetensors")).unwrap();
    let tuned = WeightFile::parse_named("tuned", &bytes).unwrap();
    for name in base_file.names() {
        let rows = base_file
            .shape(&name)
            .unwrap()
            .first()
            .copied()
            .unwrap_or(1);
        let before = base_file.rows_f32(&name, 0..rows).unwrap();
        if name == "cls_embedding.weight" {
            // 10 digits, the new class, the null row: the digits' rows stay (no digit trained),
            // the new row moved away from its start (the mean row).
            let after = tuned.rows_f32(&name, 0..12).unwrap();
            let width = before.len() / 11;
            assert_eq!(after[..10 * width], before[..10 * width]);
            assert_ne!(after[10 * width..11 * width], after[..width]);
            continue;
        }
        let after = tuned.rows_f32(&name, 0..rows).unwrap();
        assert!(before == after, "{name} changed in an embeddings run");
    }
    // The checkpoint holds moments for the class table alone.
    let (_, moments) = checkpoint_moments(&whole);
    assert_eq!(moments, ["optim.m.cls_embedding.weight"]);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A LoRA run trains adapters and the class table alone, resumes exactly, keeps AdamW state
/// for those alone, and saves a model under the official names only: the adapted weights
/// moved (W + alpha / r · B A), every other weight as it was.
#[test]
fn lora_training_saves_merged_official_weights_and_resumes_exactly() {
    let root = dir("lora");
    let lora = [
        "--train",
        "lora",
        "--lora-rank",
        "4",
        "--lora-targets",
        "attention,head",
    ];
    // Checkpointing is free to change on resume: the same steps.
    let (base, data, whole, printed) = whole_and_resumed(&root, &lora, &["--checkpointing"]);
    assert!(printed.contains("LoRA rank 4"), "{printed}");

    let base_file = WeightFile::parse_named("base", bitdance::model::DEFAULT_MODEL_BYTES).unwrap();
    let bytes = std::fs::read(whole.join("model.safetensors")).unwrap();
    let tuned = WeightFile::parse_named("tuned", &bytes).unwrap();
    let mut names = tuned.names();
    names.sort();
    let mut official = base_file.names();
    official.sort();
    assert_eq!(names, official, "the model holds the official names alone");
    let adapted = |n: &str| {
        (n.starts_with("layers.") && n.contains(".attention.w") && n.ends_with(".weight"))
            || (n.starts_with("head.net.res_blocks.") && n.ends_with(".weight") && {
                let leaf = n.rsplit('.').nth(1).unwrap_or("");
                ["wqkv", "wo", "w1", "w2"].contains(&leaf)
            })
    };
    let mut moved = 0;
    for name in &official {
        let rows = base_file.shape(name).unwrap()[0];
        let before = base_file.rows_f32(name, 0..rows).unwrap();
        if name == "cls_embedding.weight" {
            let after = tuned.rows_f32(name, 0..12).unwrap();
            let width = before.len() / 11;
            assert_eq!(after[..10 * width], before[..10 * width], "digit rows stay");
            continue;
        }
        let after = tuned.rows_f32(name, 0..rows).unwrap();
        if adapted(name) {
            moved += usize::from(before != after);
        } else {
            assert!(
                before == after,
                "{name} changed in a LoRA run on attention,head"
            );
        }
    }
    assert!(moved >= 8, "only {moved} adapted weights moved");
    // The checkpoint holds the adapters, with moments for them and the class table alone.
    let (ckpt, moments) = checkpoint_moments(&whole);
    assert!(moments.contains(&"optim.m.cls_embedding.weight".to_string()));
    assert!(moments.iter().all(|n| n.ends_with(".lora_A.weight")
        || n.ends_with(".lora_B.weight")
        || n == "optim.m.cls_embedding.weight"));
    assert!(ckpt.contains(&"layers.0.attention.wqkv.lora_A.weight".to_string()));
    // The adapters file: a fraction of the model, merged back into the base it names, it is
    // the saved model; `generate --adapters` samples with it, and refuses another base.
    let adapters_path = whole.join("adapters.safetensors");
    let adapters = std::fs::read(&adapters_path).unwrap();
    assert!(
        adapters.len() * 3 < bytes.len(),
        "{} vs {}",
        adapters.len(),
        bytes.len()
    );
    let adapters_file = WeightFile::parse_named("adapters", &adapters).unwrap();
    let base_sha = bitdance::studio::sha256_hex(bitdance::model::DEFAULT_MODEL_BYTES);
    let merged =
        bitdance::train::merge_adapter_file(&base_file, &base_sha, &adapters_file).unwrap();
    let merged = WeightFile::parse_named("merged", &merged).unwrap();
    for name in &official {
        let rows = tuned.shape(name).unwrap()[0];
        let (a, b) = (
            tuned.rows_f32(name, 0..rows).unwrap(),
            merged.rows_f32(name, 0..rows).unwrap(),
        );
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{name}: merged from the adapters differs by {worst}"
        );
    }
    let image = root.join("sneaker.png");
    let adapters_arg = adapters_path.display().to_string();
    let image_arg = image.display().to_string();
    bitdance(&[
        "generate",
        "--adapters",
        &adapters_arg,
        "-c",
        "sneaker",
        "--steps",
        "4",
        "--output",
        &image_arg,
    ]);
    assert!(image.exists());
    let model_arg = whole.join("model.safetensors").display().to_string();
    let err = bitdance_fails(&[
        "generate",
        "--weights",
        &model_arg,
        "--adapters",
        &adapters_arg,
        "-c",
        "0",
    ]);
    assert!(
        err.contains("were trained on the model of SHA-256"),
        "{err}"
    );
    // A rank wider than a layer is refused by name.
    let wide = ["--steps", "1", "--train", "lora", "--lora-rank", "100000"];
    let args = finetune_args(&base, &data, &root.join("wide"), &wide);
    let err = bitdance_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("LoRA rank 100000"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// The memory plan printed before the first step is within 15% of the pool's measured peak
/// (full and class-table runs), and a plan over `--memory-budget` is refused before anything
/// is allocated, naming the batch that would fit.
#[test]
fn the_memory_plan_matches_the_measured_peak_and_refuses_what_does_not_fit() {
    let root = dir("memory");
    let (base, data) = finetune_inputs(&root, &[("fashion-mnist/train/7-sneaker", "sneaker")], 8);
    let mib_after = |text: &str, marker: &str| -> f64 {
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("no '{marker}' in:\n{text}"));
        let rest = text[at + marker.len()..].trim_start();
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let flags = ["--steps", "2", "--batch", "8"];
    for (out, extra) in [
        ("full", vec![]),
        ("table", vec!["--train", "embeddings"]),
        ("recomputed", vec!["--checkpointing"]),
    ] {
        let all: Vec<&str> = flags.iter().copied().chain(extra).collect();
        let printed = finetune(&base, &data, &root.join(out), &all);
        let plan_line = printed
            .lines()
            .find(|l| l.starts_with("memory plan:"))
            .unwrap();
        let planned = mib_after(plan_line, " = ");
        let peak = mib_after(&printed, "peak GPU memory");
        eprintln!("{out}: planned {planned} MiB, measured peak {peak} MiB");
        let ratio = planned / peak;
        assert!(
            (0.85..=1.15).contains(&ratio),
            "{out}: planned {planned} MiB, measured peak {peak} MiB"
        );
    }
    let refused = root.join("refused");
    let over: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["--memory-budget", "0.08"])
        .collect();
    let args = finetune_args(&base, &data, &refused, &over);
    let err = bitdance_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("over the budget of 81.9 MiB") && err.contains("--batch 2 ("),
        "{err}"
    );
    assert!(!refused.join("checkpoint.safetensors").exists());
    std::fs::remove_dir_all(&root).unwrap();
}
