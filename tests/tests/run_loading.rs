//! Fine-tuning runs loaded and saved a tensor at a time, as the web page does it from Blobs and
//! into OPFS: a run started from a model's header and byte ranges (its autoencoder in a second
//! file, its class table grown on the way) is the run started from the whole file in memory,
//! and a checkpoint written piece by piece resumes from its header and ranges bit for bit.

use std::collections::BTreeMap;

use bitdance::gpu::block_on;
use bitdance::io::{header_size, WeightFile};
use bitdance::model::{
    ar_parameters, decoder_parameters, encoder_parameters, ParamStore, TensorLoader,
};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::train::{
    start_finetune, ArBatch, ArRecipe, ClassPolicy, FinetuneLoad, LoraSpec, ResumeLoad, Task,
    TrainSettings, Trainer, Trains, CLASS_TABLE,
};
use bitdance_tests::{gpu, tiny_config as tiny};

/// A LoRA run's settings (class rows, adapters, frozen base: every kind of tensor a run saves).
fn lora_settings() -> TrainSettings {
    TrainSettings {
        task: Task::Ar(ArRecipe {
            trains: Trains::Lora(LoraSpec::default()),
            ..ArRecipe::default()
        }),
        adamw: AdamWConfig::default(),
        schedule: LrSchedule {
            peak: 3e-3,
            min_lr: 3e-4,
            warmup: 2,
            decay_start: 5,
            total: 10,
        },
        ema_decay: 0.9,
        seed: 3,
    }
}

/// A file of `bytes` as the page sees a Blob before reading it: its header alone.
fn header_only<'a>(label: &str, bytes: &'a [u8]) -> WeightFile<'a> {
    let n = header_size(label, &bytes[..8]).unwrap();
    WeightFile::from_header(label, &bytes[..n], bytes.len() as u64).unwrap()
}

/// Drives `loader` as the page does: each planned range read from its file's bytes; returns
/// how many reads it took.
fn read_by_ranges(loader: &mut TensorLoader<'_>, model: &[u8], vae: Option<&[u8]>) -> usize {
    let mut reads = 0;
    while let Some(read) = loader.next_read().cloned() {
        let bytes = match read.file {
            bitdance::model::LoadFile::Model => model,
            bitdance::model::LoadFile::Vae => vae.unwrap(),
        };
        loader
            .upload(&bytes[read.range.start as usize..read.range.end as usize])
            .unwrap();
        reads += 1;
    }
    assert_eq!(
        loader.progress().0,
        loader.progress().1,
        "every byte counted"
    );
    reads
}

#[test]
fn a_run_read_in_pieces_from_a_model_and_its_separate_autoencoder_starts_as_from_one_file() {
    let c = tiny(4);
    let gpu = gpu();
    let ar = ar_parameters(&c);
    let mut ae = encoder_parameters(&c.vae);
    ae.extend(decoder_parameters(&c.vae));
    let meta = BTreeMap::from([("bitdance.config".to_string(), c.to_json())]);
    let mut all = ar.clone();
    all.extend(ae.clone());
    let store = ParamStore::random(&gpu, &all, &mut Rng::new(8), 0.2).unwrap();
    let one_file = block_on(store.to_safetensors(Some(&meta))).unwrap();
    let (vae_part, model_part) = store.partition(|n| n.starts_with("vae."));
    let model_bytes = block_on(model_part.to_safetensors(Some(&meta))).unwrap();
    // The autoencoder file names its tensors without the prefix, as official `.pt`s do.
    let vae_bytes = block_on(
        vae_part
            .renamed(|n| n.trim_start_matches("vae.").to_string())
            .to_safetensors(None),
    )
    .unwrap();
    // Two of the model's classes and one new one: the class table grows by a row.
    let folders: Vec<String> = ["0", "3", "shoes"].map(String::from).to_vec();
    let whole = WeightFile::parse_named("model", &one_file).unwrap();
    let (plan_a, a) = start_finetune(
        &gpu,
        &whole,
        "base",
        &folders,
        ClassPolicy::ByName,
        lora_settings(),
    )
    .unwrap();
    let model = header_only("model", &model_bytes);
    let vae = header_only("autoencoder", &vae_bytes);
    let mut load = FinetuneLoad::in_pieces(
        &gpu,
        &model,
        Some(&vae),
        "base",
        &folders,
        ClassPolicy::ByName,
        lora_settings(),
        256,
    )
    .unwrap();
    let reads = read_by_ranges(&mut load.tensors, &model_bytes, Some(&vae_bytes));
    assert!(
        reads > all.len(),
        "large tensors read in pieces: {reads} reads"
    );
    let (plan_b, b) = load.finish().unwrap();
    assert_eq!(plan_a, plan_b);
    assert_eq!(b.config.num_classes, c.num_classes + 1);
    assert_eq!(
        b.frozen
            .shape(CLASS_TABLE)
            .or(b.params.shape(CLASS_TABLE))
            .unwrap()[0],
        c.num_classes + 2,
        "the class table grew by one row before the null row"
    );
    assert!(
        block_on(a.checkpoint()).unwrap() == block_on(b.checkpoint()).unwrap(),
        "the two starts hold the same state"
    );
    // The table grown a run of rows at a time: the model's rows, their mean (summed in f64,
    // in row order) for the new class, the null row last.
    let file_table = whole.to_f32(CLASS_TABLE).unwrap();
    let width = file_table.len() / (c.num_classes + 1);
    let mut mean = vec![0f64; width];
    for row in file_table.chunks(width).take(c.num_classes) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / c.num_classes as f64;
        }
    }
    let mut expected = file_table[..c.num_classes * width].to_vec();
    expected.extend(mean.iter().map(|m| *m as f32));
    expected.extend(&file_table[c.num_classes * width..]);
    let table = |t: &Trainer| {
        let store = t.sampling_store(false).unwrap();
        let parts = store.get_chunks(CLASS_TABLE).unwrap();
        let mut v = Vec::new();
        for p in parts {
            v.extend(p.read_f32().unwrap());
        }
        v
    };
    assert!(table(&b) == expected && table(&a) == expected);
    // A model read by ranges whose autoencoder file lacks a tensor is refused by name.
    let short = block_on(
        ParamStore::random(&gpu, &ae[1..], &mut Rng::new(1), 0.1)
            .unwrap()
            .to_safetensors(None),
    )
    .unwrap();
    let short = header_only("short.safetensors", &short);
    let e = FinetuneLoad::new(
        &gpu,
        &model,
        Some(&short),
        "base",
        &folders,
        ClassPolicy::ByName,
        lora_settings(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("short.safetensors") && e.contains(&format!("missing: '{}'", ae[0].name)),
        "{e}"
    );
}

#[test]
fn a_checkpoint_written_a_tensor_at_a_time_resumes_from_its_header_and_ranges_exactly() {
    let c = tiny(4);
    let gpu = gpu();
    let params = ParamStore::random(&gpu, &ar_parameters(&c), &mut Rng::new(1), 0.05).unwrap();
    let mut run = Trainer::new(c.clone(), params, ParamStore::new(), lora_settings()).unwrap();
    run.train_class_rows(&[0, 2]).unwrap();
    let n = c.image_tokens() * c.token_dim();
    let mut rng = Rng::new(9);
    let tokens: Vec<f32> = (0..2 * n)
        .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let classes = [0u32, 2];
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    for _ in 0..2 {
        block_on(run.step(&batch)).unwrap();
    }
    // The pieces: the header, then runs of rows of at most 512 bytes, adding up to the file.
    let mut stream = run.checkpoint_stream().unwrap().in_pieces(512);
    let mut pieces = vec![stream.header().to_vec()];
    let size = stream.len();
    while let Some(piece) = block_on(stream.next_piece()).unwrap() {
        pieces.push(piece);
    }
    let bytes: Vec<u8> = pieces.concat();
    assert_eq!(bytes.len() as u64, size);
    assert!(bytes == block_on(run.checkpoint()).unwrap());
    let file = header_only("checkpoint", &bytes);
    assert!(
        pieces.len() > 1 + file.names().len(),
        "{} pieces",
        pieces.len()
    );
    // A piece is at most 512 bytes, or one row where a row is larger.
    let widest_row = file
        .names()
        .iter()
        .map(|n| 4 * file.shape(n).unwrap().iter().skip(1).product::<usize>())
        .max()
        .unwrap();
    assert!(widest_row > 512);
    assert!(pieces[1..].iter().all(|p| p.len() <= widest_row.max(512)));
    let mut load = ResumeLoad::in_pieces(&gpu, &file, Some(&c), 128).unwrap();
    let reads = read_by_ranges(&mut load.tensors, &bytes, None);
    assert!(reads > file.names().len(), "{reads} reads");
    let mut resumed = load.finish().unwrap();
    assert_eq!(resumed.class_rows(), run.class_rows());
    assert!(
        block_on(resumed.checkpoint()).unwrap() == bytes,
        "the resumed run writes the same checkpoint"
    );
    let (x, y) = (
        block_on(run.step(&batch)).unwrap(),
        block_on(resumed.step(&batch)).unwrap(),
    );
    assert_eq!((x.loss, x.grad_norm), (y.loss, y.grad_norm));
}
