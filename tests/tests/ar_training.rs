//! AR training with the official recipe on a tiny model: the loss falls, a step is one
//! submit, N steps + checkpoint + resume + M steps equals N + M steps in one run, and
//! gradient checkpointing changes nothing but what the tape keeps.

use bitdance::autograd::Tape;
use bitdance::gpu::block_on;
use bitdance::io::WeightFile;
use bitdance::model::{ar_parameters, ModelConfig, ParamStore, ParamVars};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::train::{
    ar_loss, ArBatch, ArDraws, ArRecipe, Task, TrainSettings, Trainer, CLASS_TABLE,
};
use bitdance_tests::{gpu, tiny_config as tiny};

/// Four images of two classes: each class has its own fixed random token bits.
fn dataset(c: &ModelConfig) -> (Vec<f32>, Vec<u32>) {
    let n = c.image_tokens() * c.token_dim();
    let mut rng = Rng::new(77);
    let patterns: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..n)
                .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
                .collect()
        })
        .collect();
    let classes = vec![0u32, 1, 1, 0];
    let tokens = classes
        .iter()
        .flat_map(|&k| patterns[k as usize].clone())
        .collect();
    (tokens, classes)
}

/// Serialises the tests of this file: they share one GPU, whose submit counter one of them reads.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `check` with (tokens per step, config, batch) for the tiny 1x model and the tiny
/// next-patch model (4 tokens per step), each on its dataset.
fn for_both_models(check: impl Fn(usize, &ModelConfig, &ArBatch)) {
    for p in [1, 4] {
        let c = tiny(p);
        let (tokens, classes) = dataset(&c);
        let batch = ArBatch {
            tokens: &tokens,
            classes: &classes,
        };
        check(p, &c, &batch);
    }
}

fn settings(total: u64) -> TrainSettings {
    TrainSettings {
        task: Task::Ar(ArRecipe::default()),
        adamw: AdamWConfig::default(),
        schedule: LrSchedule {
            peak: 3e-3,
            min_lr: 3e-4,
            warmup: 5,
            decay_start: 20,
            total,
        },
        ema_decay: 0.99,
        seed: 5,
    }
}

fn trainer(c: &ModelConfig, total: u64) -> Trainer {
    let params = ParamStore::random(&gpu(), &ar_parameters(c), &mut Rng::new(1), 0.05).unwrap();
    Trainer::new(c.clone(), params, ParamStore::new(), settings(total)).unwrap()
}

#[test]
fn the_loss_falls_with_one_submit_per_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for_both_models(|p, c, batch| {
        let steps = 60;
        let mut t = trainer(c, steps);
        let mut losses = Vec::new();
        for i in 0..steps {
            let before = gpu().stats();
            let s = block_on(t.step(batch)).unwrap();
            if i == 1 {
                let submits = gpu().stats().submits - before.submits;
                eprintln!(
                    "p={p}: {} dispatches per step",
                    gpu().stats().dispatches - before.dispatches
                );
                assert_eq!(submits, 1, "p={p}: one submit per step");
            }
            assert!(s.grad_norm.is_finite() && s.grad_norm > 0.0);
            losses.push(s.loss);
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let (first, last) = (mean(&losses[..10]), mean(&losses[steps as usize - 10..]));
        eprintln!("p={p}: loss {first:.3} -> {last:.3} in {steps} steps");
        assert!(last < 0.5 * first, "p={p}: loss {first} -> {last}");
    });
}

#[test]
fn resume_continues_exactly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let (tokens, classes) = dataset(&c);
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let (n, m) = (4, 3);
    let mut straight = trainer(&c, 10);
    let whole: Vec<f32> = (0..n + m)
        .map(|_| block_on(straight.step(&batch)).unwrap().loss)
        .collect();
    let mut first = trainer(&c, 10);
    let mut losses: Vec<f32> = (0..n)
        .map(|_| block_on(first.step(&batch)).unwrap().loss)
        .collect();
    let bytes = block_on(first.checkpoint()).unwrap();
    drop(first);
    let file = WeightFile::parse_named("ckpt.safetensors", &bytes).unwrap();
    let mut resumed = Trainer::resume(&gpu(), &file, Some(&c)).unwrap();
    assert_eq!(resumed.step_count(), n as u64);
    losses.extend((0..m).map(|_| block_on(resumed.step(&batch)).unwrap().loss));
    assert_eq!(losses, whole, "N + resume + M steps equal N + M steps");
    let ema_a = block_on(straight.checkpoint()).unwrap();
    let ema_b = block_on(resumed.checkpoint()).unwrap();
    assert_eq!(ema_a, ema_b, "weights, EMA, moments and state all equal");
    // A checkpoint of another config is refused, naming both.
    let other = tiny(1);
    let err = Trainer::resume(&gpu(), &file, Some(&other))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("another config"), "{err}");
}

#[test]
fn a_non_finite_loss_stops_with_the_step_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let (mut tokens, classes) = dataset(&c);
    let mut t = trainer(&c, 10);
    let good = ArBatch {
        tokens: &tokens.clone(),
        classes: &classes,
    };
    block_on(t.step(&good)).unwrap();
    tokens[3] = f32::NAN;
    let bad = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let Err(err) = block_on(t.step(&bad)) else {
        panic!("a NaN input must fail the step");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("diverged") && msg.contains("at step 2"),
        "{msg}"
    );
}

#[test]
fn a_state_holding_nan_is_never_written_as_a_checkpoint_or_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let mut t = trainer(&c, 10);
    block_on(t.checkpoint()).unwrap();
    let shape = t.params.get("norm.weight").unwrap().shape().to_vec();
    let mut values = vec![1.0; shape.iter().product()];
    values[1] = f32::NAN;
    let poisoned = bitdance::Tensor::from_f32(&gpu(), &shape, &values).unwrap();
    t.params.insert("norm.weight", poisoned);
    let err = block_on(t.checkpoint()).unwrap_err().to_string();
    assert!(
        err.contains("not finite") && err.contains("'norm.weight' holds 1 NaN"),
        "{err}"
    );
    // The exported model (the EMA) is still finite; the raw weights are not.
    block_on(t.export_model(true, false)).unwrap();
    let err = block_on(t.export_model(false, false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing was written"), "{err}");
}

#[test]
fn checkpointing_gives_the_same_steps_while_keeping_fewer_values() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for_both_models(|p, c, batch| {
        // The tape of one loss: fewer activations kept when the blocks recompute.
        let params = ParamStore::random(&gpu(), &ar_parameters(c), &mut Rng::new(1), 0.05).unwrap();
        let recipe = ArRecipe::default();
        let draws = ArDraws::sample(c, batch, &recipe, &mut Rng::new(3));
        let kept = |tape: &Tape| {
            let vars = ParamVars::new(tape, &params, true);
            ar_loss(tape, c, &vars, batch, &draws, &recipe).unwrap();
            tape.activation_elements()
        };
        let (plain, recomputing) = (kept(&Tape::new()), kept(&Tape::recomputing()));
        eprintln!("p={p}: {plain} activation values kept, {recomputing} with checkpointing");
        assert!(
            recomputing * 2 < plain,
            "p={p}: {recomputing} of {plain} activation values kept"
        );
        // Whole steps (backward, clipping, AdamW, EMA): bit for bit the same.
        let mut reference = trainer(c, 10);
        let mut checkpointed = trainer(c, 10);
        checkpointed.checkpointing = true;
        for step in 0..3 {
            let a = block_on(reference.step(batch)).unwrap();
            let b = block_on(checkpointed.step(batch)).unwrap();
            assert_eq!(
                (a.loss, a.grad_norm),
                (b.loss, b.grad_norm),
                "p={p} step {step}"
            );
        }
        let a = block_on(reference.checkpoint()).unwrap();
        let b = block_on(checkpointed.checkpoint()).unwrap();
        assert!(a == b, "p={p}: weights, moments and EMA differ");
    });
}

/// `store` with its class table cut into row chunks of `rows` rows, as a table over one
/// storage binding is held.
fn with_table_in_chunks(store: ParamStore, rows: usize) -> ParamStore {
    let (table, mut rest) = store.partition(|n| n == CLASS_TABLE);
    let table = table.get(CLASS_TABLE).unwrap();
    let total = table.shape()[0];
    let chunks = (0..total)
        .step_by(rows)
        .map(|start| bitdance::ops::slice(table, 0, start, rows.min(total - start)).unwrap())
        .collect::<Vec<_>>();
    assert!(chunks.len() >= 2);
    rest.insert_chunks(CLASS_TABLE, chunks);
    rest
}

#[test]
fn a_class_table_held_in_row_chunks_trains_as_a_whole_one() {
    use bitdance::train::{LoraSpec, Trains};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let (tokens, classes) = dataset(&c);
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    for trains in [Trains::Full, Trains::Lora(LoraSpec::default())] {
        let mut s = settings(10);
        s.task = Task::Ar(ArRecipe {
            trains,
            ..ArRecipe::default()
        });
        let make = |chunk_rows: Option<usize>| {
            let params =
                ParamStore::random(&gpu(), &ar_parameters(&c), &mut Rng::new(1), 0.05).unwrap();
            let params = match chunk_rows {
                Some(rows) => with_table_in_chunks(params, rows),
                None => params,
            };
            Trainer::new(c.clone(), params, ParamStore::new(), s).unwrap()
        };
        let (mut whole, mut chunked) = (make(None), make(Some(2)));
        assert_eq!(chunked.params.get_chunks(CLASS_TABLE).unwrap().len(), 3);
        for step in 0..3 {
            let a = block_on(whole.step(&batch)).unwrap();
            let b = block_on(chunked.step(&batch)).unwrap();
            let close = (a.loss - b.loss).abs() <= 1e-6 * a.loss.abs()
                && (a.grad_norm - b.grad_norm).abs() <= 1e-5 * a.grad_norm;
            assert!(close, "{trains:?} step {step}: {a:?} vs {b:?}");
        }
        // The chunks' rows moved: the classes of the batch are in different chunks.
        let rows = |t: &Trainer| {
            let store = t.sampling_store(false).unwrap();
            block_on(store.to_safetensors(None)).unwrap()
        };
        let (a, b) = (rows(&whole), rows(&chunked));
        let (fa, fb) = (
            WeightFile::parse_named("whole", &a).unwrap(),
            WeightFile::parse_named("chunked", &b).unwrap(),
        );
        assert_eq!(
            fa.names(),
            fb.names(),
            "{trains:?}: the sampling stores' tensors"
        );
        let table = |f: &WeightFile| f.to_f32(CLASS_TABLE).unwrap();
        let err = bitdance_tests::max_relative_error(&table(&fb), &table(&fa));
        assert!(err < 1e-5, "{trains:?}: class table differs by {err}");
        // The checkpoint holds the table, its EMA and moments whole, under official names,
        // and resumes (here whole: this adapter's binding holds it) into the same steps.
        let bytes = block_on(chunked.checkpoint()).unwrap();
        let file = WeightFile::parse_named("chunked.safetensors", &bytes).unwrap();
        let reference = block_on(whole.checkpoint()).unwrap();
        let reference = WeightFile::parse_named("whole.safetensors", &reference).unwrap();
        assert_eq!(
            file.names(),
            reference.names(),
            "{trains:?}: checkpoint tensors"
        );
        for prefix in ["", "ema.", "optim.m.", "optim.v."] {
            let name = format!("{prefix}{CLASS_TABLE}");
            assert_eq!(
                file.shape(&name).unwrap(),
                [c.num_classes + 1, c.cls_token_num * c.dim],
                "{name}"
            );
        }
        let mut resumed = Trainer::resume(&gpu(), &file, Some(&c)).unwrap();
        for step in 3..5 {
            let a = block_on(whole.step(&batch)).unwrap();
            let b = block_on(resumed.step(&batch)).unwrap();
            let close = (a.loss - b.loss).abs() <= 1e-5 * a.loss.abs();
            assert!(close, "{trains:?} resumed step {step}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn a_lora_run_on_a_16_bit_base_trains_as_on_its_rounded_f32_values_and_resumes_exactly() {
    use bitdance::train::{LoraSpec, Trains};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let (tokens, classes) = dataset(&c);
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let mut s = settings(10);
    let recipe = ArRecipe {
        trains: Trains::Lora(LoraSpec::default()),
        half_base: true,
        ..ArRecipe::default()
    };
    s.task = Task::Ar(recipe);
    let half = s.task.half_weights(&c);
    let wqkv = "layers.0.attention.wqkv.weight";
    assert!(
        half.contains(wqkv) && !half.contains(CLASS_TABLE),
        "{half:?}"
    );
    let base =
        ParamStore::random_in(&gpu(), &ar_parameters(&c), &mut Rng::new(1), 0.05, &half).unwrap();
    // The same base in f32: the 16-bit values widened.
    let bytes = block_on(base.to_safetensors(None)).unwrap();
    let file = WeightFile::parse_named("base", &bytes).unwrap();
    let wide = ParamStore::from_weights(&gpu(), &file, &ar_parameters(&c)).unwrap();
    let mut halved = Trainer::new(c.clone(), base, ParamStore::new(), s).unwrap();
    assert_eq!(
        halved.frozen.get(wqkv).unwrap().dtype(),
        bitdance::DType::F16
    );
    let mut f32_settings = s;
    f32_settings.task = Task::Ar(ArRecipe {
        half_base: false,
        ..recipe
    });
    let mut widened = Trainer::new(c.clone(), wide, ParamStore::new(), f32_settings).unwrap();
    for step in 0..4 {
        let a = block_on(halved.step(&batch)).unwrap();
        let b = block_on(widened.step(&batch)).unwrap();
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * b.loss.abs(),
            "step {step}: {a:?} vs {b:?}"
        );
    }
    // The merged model widens the base: the same weights as the f32 run's merge.
    let merged = |t: &Trainer| {
        let bytes = block_on(t.export_model(true, false)).unwrap();
        let file = WeightFile::parse_named("model", &bytes).unwrap();
        file.to_f32(wqkv).unwrap()
    };
    let err = bitdance_tests::max_relative_error(&merged(&halved), &merged(&widened));
    assert!(err < 1e-5, "merged {wqkv} differs by {err}");
    // Resumed, the base is 16-bit again and the steps are those of the run that went on.
    let ckpt = block_on(halved.checkpoint()).unwrap();
    let file = WeightFile::parse_named("ckpt", &ckpt).unwrap();
    let mut resumed = Trainer::resume(&gpu(), &file, Some(&c)).unwrap();
    assert_eq!(
        resumed.frozen.get(wqkv).unwrap().dtype(),
        bitdance::DType::F16
    );
    for step in 4..6 {
        let a = block_on(halved.step(&batch)).unwrap();
        let b = block_on(resumed.step(&batch)).unwrap();
        assert_eq!(a.loss, b.loss, "resumed step {step}");
    }
    // The plan counts the base, its autoencoder's convolutions included, at 2 bytes a weight.
    let plan = |task: &Task| bitdance::train::MemoryPlan::of(task, &c, 4, false).parts[0].1;
    let saved = plan(&f32_settings.task) - plan(&s.task);
    let vae = bitdance::model::encoder_parameters(&c.vae)
        .into_iter()
        .chain(bitdance::model::decoder_parameters(&c.vae));
    assert!(vae.clone().any(|p| half.contains(&p.name)), "{half:?}");
    let half_elements: usize = ar_parameters(&c)
        .into_iter()
        .chain(vae)
        .filter(|p| half.contains(&p.name))
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    assert_eq!(saved as usize, 2 * half_elements);
}

#[test]
fn a_run_that_trains_some_class_rows_keeps_state_for_those_alone() {
    use bitdance::train::{LoraSpec, Trains};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let (tokens, classes) = dataset(&c);
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let width = c.cls_token_num * c.dim;
    for trains in [Trains::Lora(LoraSpec::default()), Trains::Embeddings] {
        let mut s = settings(10);
        s.task = Task::Ar(ArRecipe {
            trains,
            ..ArRecipe::default()
        });
        let make = || {
            let params =
                ParamStore::random(&gpu(), &ar_parameters(&c), &mut Rng::new(1), 0.05).unwrap();
            Trainer::new(c.clone(), params, ParamStore::new(), s).unwrap()
        };
        let (mut whole, mut rows) = (make(), make());
        rows.train_class_rows(&[1, 0, 1]).unwrap();
        assert_eq!(rows.class_rows(), Some(&[0, 1, 5][..]), "{trains:?}");
        assert_eq!(rows.params.shape(CLASS_TABLE).unwrap(), [3, width]);
        for step in 0..3 {
            let a = block_on(whole.step(&batch)).unwrap();
            let b = block_on(rows.step(&batch)).unwrap();
            let close = (a.loss - b.loss).abs() <= 1e-6 * a.loss.abs()
                && (a.grad_norm - b.grad_norm).abs() <= 1e-5 * a.grad_norm;
            assert!(close, "{trains:?} step {step}: {a:?} vs {b:?}");
        }
        // The checkpoint: the full table (the untrained rows as they were), its EMA in full,
        // the moments of the three trained rows.
        let table = |bytes: &[u8], name: &str| {
            let f = WeightFile::parse_named("f", bytes).unwrap();
            (f.shape(name).unwrap().to_vec(), f.to_f32(name).unwrap())
        };
        let (a, b) = (
            block_on(whole.checkpoint()).unwrap(),
            block_on(rows.checkpoint()).unwrap(),
        );
        for name in [CLASS_TABLE.to_string(), format!("ema.{CLASS_TABLE}")] {
            let ((sa, va), (sb, vb)) = (table(&a, &name), table(&b, &name));
            assert_eq!(sa, sb, "{trains:?} {name}");
            let err = bitdance_tests::max_relative_error(&vb, &va);
            assert!(err < 1e-5, "{trains:?} {name} differs by {err}");
        }
        let moment = format!("optim.m.{CLASS_TABLE}");
        assert_eq!(table(&b, &moment).0, [3, width], "{trains:?}");
        // Exported models and sampling see the full table too.
        let model =
            |t: &Trainer| table(&block_on(t.export_model(true, false)).unwrap(), CLASS_TABLE);
        let ((sa, va), (sb, vb)) = (model(&whole), model(&rows));
        assert_eq!(sa, sb);
        assert!(
            bitdance_tests::max_relative_error(&vb, &va) < 1e-5,
            "{trains:?}"
        );
        let sampled = rows.sampling_store(true).unwrap();
        let sampled = table(
            &block_on(sampled.to_safetensors(None)).unwrap(),
            CLASS_TABLE,
        );
        assert_eq!(
            sampled,
            (sb, vb),
            "{trains:?}: sampling joins the rows as the export"
        );
        // Resumed, the run keeps its rows and takes the steps of the run that went on.
        let file = WeightFile::parse_named("ckpt", &b).unwrap();
        let mut resumed = Trainer::resume(&gpu(), &file, Some(&c)).unwrap();
        assert_eq!(resumed.class_rows(), Some(&[0, 1, 5][..]));
        for step in 3..5 {
            let a = block_on(rows.step(&batch)).unwrap();
            let b = block_on(resumed.step(&batch)).unwrap();
            assert_eq!(a.loss, b.loss, "{trains:?} resumed step {step}");
        }
        // A class the run does not train is refused by number.
        let e = resumed.train_class_rows(&[3]).unwrap_err().to_string();
        assert!(e.contains("class 3"), "{e}");
        let other = ArBatch {
            tokens: &tokens,
            classes: &[2, 2, 2, 2],
        };
        let e = block_on(resumed.step(&other)).unwrap_err().to_string();
        assert!(e.contains("class 2"), "{e}");
    }
}

#[test]
fn a_lora_model_merges_its_adapters_into_the_official_weights() {
    use bitdance::reference::{matmul_ref, MatmulDims};
    use bitdance::train::{LoraSpec, LoraTargets};
    let c = tiny(4);
    let spec = LoraSpec {
        rank: 3,
        alpha: 6.0,
        targets: LoraTargets::all(),
    };
    let mut store = ParamStore::random(&gpu(), &ar_parameters(&c), &mut Rng::new(4), 0.05).unwrap();
    // Adapters with B not zero, so the merge has something to add.
    store.extend(ParamStore::random(&gpu(), &spec.parameters(&c), &mut Rng::new(5), 0.3).unwrap());
    let merged = spec.merged(&store, &c).unwrap();
    let read = |s: &ParamStore, n: &str| block_on(s.get(n).unwrap().to_vec_f32()).unwrap();
    let layers = spec.layers(&c);
    assert_eq!(merged.len(), ar_parameters(&c).len(), "adapters removed");
    for l in &layers {
        let [n, k] = l.shape;
        let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        let dims = MatmulDims {
            batch: 1,
            m: n,
            k: spec.rank,
            n: k,
            trans_a: false,
            trans_b: false,
            b_shared: false,
        };
        let product = matmul_ref(
            &wide(read(&store, &l.b)),
            &wide(read(&store, &l.a)),
            None,
            dims,
        );
        let w = read(&store, &l.weight);
        let got = read(&merged, &l.weight);
        for i in 0..n * k {
            let want = f64::from(w[i]) + 2.0 * product[i];
            assert!(
                (f64::from(got[i]) - want).abs() < 1e-5,
                "{} [{i}]",
                l.weight
            );
        }
    }
    let untouched = "head.net.final_layer.linear.weight";
    assert_eq!(read(&merged, untouched), read(&store, untouched));
}

#[test]
fn the_step_time_told_before_the_start_is_near_the_measured_one() {
    use bitdance::train::{step_flops, step_seconds, time_throughput_probe};
    use std::time::Instant;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The default model's config at batch 16: a compute-bound step, as every B model's is.
    let c = ModelConfig::builtin("tiny").unwrap();
    let g = gpu();
    let n = c.image_tokens() * c.token_dim();
    let mut rng = Rng::new(3);
    let tokens: Vec<f32> = (0..16 * n)
        .map(|_| if rng.below(2) == 1 { 1.0 } else { -1.0 })
        .collect();
    let classes: Vec<u32> = (0..16).map(|i| (i % c.num_classes) as u32).collect();
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let flops = step_flops(&settings(10).task, &c, 16, false).unwrap();
    let origin = Instant::now();
    let now = || origin.elapsed().as_secs_f64();
    let (probe, secs) = block_on(time_throughput_probe(&g, c.dim, &now)).unwrap();
    let estimate = step_seconds(flops, probe, secs);
    let mut t = trainer(&c, 10);
    for _ in 0..2 {
        block_on(t.step(&batch)).unwrap();
    }
    let start = Instant::now();
    for _ in 0..3 {
        block_on(t.step(&batch)).unwrap();
    }
    let measured = start.elapsed().as_secs_f64() / 3.0;
    eprintln!("step time: estimated {estimate:.3} s, measured {measured:.3} s");
    // A busy machine slows either side; a wrong count of the work is off by far more.
    let ratio = estimate / measured;
    assert!(
        (1.0 / 3.0..3.0).contains(&ratio),
        "estimate / measured = {ratio:.2}"
    );
}

#[test]
fn a_16_bit_base_holds_the_autoencoder_in_16_bits_too_and_encodes_alike() {
    use bitdance::model::{decoder_parameters, encode, encoder_parameters};
    use bitdance::train::{start_finetune, ClassPolicy, LoraSpec, Trains};
    use bitdance::{DType, Tensor};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = tiny(4);
    let mut specs = ar_parameters(&c);
    specs.extend(encoder_parameters(&c.vae));
    specs.extend(decoder_parameters(&c.vae));
    let store = ParamStore::random(&gpu(), &specs, &mut Rng::new(4), 0.2).unwrap();
    let meta = std::collections::BTreeMap::from([("bitdance.config".to_string(), c.to_json())]);
    let bytes = block_on(store.to_safetensors(Some(&meta))).unwrap();
    let file = WeightFile::parse_named("model", &bytes).unwrap();
    let with = |half_base: bool| {
        let mut s = settings(10);
        s.task = Task::Ar(ArRecipe {
            trains: Trains::Lora(LoraSpec::default()),
            half_base,
            ..ArRecipe::default()
        });
        s
    };
    let start = |s| start_finetune(&gpu(), &file, "base", &[], ClassPolicy::ByName, s);
    let halved = start(with(true)).unwrap().1;
    let wide = start(with(false)).unwrap().1;
    for name in ["vae.encoder.conv_in.weight", "vae.decoder.conv_out.weight"] {
        assert_eq!(
            halved.frozen.get(name).unwrap().dtype(),
            DType::F16,
            "{name}"
        );
        assert_eq!(wide.frozen.get(name).unwrap().dtype(), DType::F32, "{name}");
    }
    // Its latents are the f32 autoencoder's to 16-bit rounding.
    let r = c.resolution;
    let pixels: Vec<f32> = (0..2 * 3 * r * r)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let x = Tensor::from_f32(&gpu(), &[2, 3, r, r], &pixels).unwrap();
    let latents = |t: &Trainer| encode(&c.vae, &t.frozen, &x).unwrap().read_f32().unwrap();
    let err = bitdance_tests::max_relative_error(&latents(&halved), &latents(&wide));
    assert!(err > 0.0 && err < 1e-2, "latents differ by {err}");
}
