//! Loading a generator from weight files: by official names, chunked past the binding limit,
//! every problem listed at once, recorded noise replayed draw for draw.

use bitdance::gpu::block_on;
use bitdance::io::{header_size, save_safetensors, WeightFile};
use bitdance::model::{
    ar_parameters, decoder_parameters, embed_prefix, encoder_parameters, generate_tokens,
    generation_parameters, load_generator, CfgSchedule, Draw, GaussianSource, LoadFile, ParamSpec,
    ParamStore, RecordedNoise, SampleSettings, TensorLoader,
};
use bitdance::rng::Rng;
use bitdance_tests::{gpu, tiny_config as tiny};

/// A random full model (AR + encoder + decoder, official names) as safetensors bytes.
fn model_file(p: usize, seed: u64) -> (Vec<ParamSpec>, Vec<u8>) {
    let c = tiny(p);
    let mut specs = ar_parameters(&c);
    specs.extend(encoder_parameters(&c.vae));
    specs.extend(decoder_parameters(&c.vae));
    let store = ParamStore::random(&gpu(), &specs, &mut Rng::new(seed), 0.2).unwrap();
    (specs, block_on(store.to_safetensors(None)).unwrap())
}

fn values(store: &ParamStore, name: &str) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in store.get_chunks(name).unwrap() {
        out.extend(chunk.read_f32().unwrap());
    }
    out
}

#[test]
fn generator_loads_by_official_names_without_the_encoder() {
    let c = tiny(4);
    let (_, bytes) = model_file(4, 1);
    let file = WeightFile::parse_named("model.safetensors", &bytes).unwrap();
    let store = load_generator(&gpu(), &c, &file, None, bitdance::model::Precision::F32).unwrap();
    assert_eq!(store.len(), generation_parameters(&c).len());
    for spec in generation_parameters(&c) {
        assert_eq!(
            values(&store, &spec.name),
            file.to_f32(&spec.name).unwrap(),
            "{}",
            spec.name
        );
    }
    let err = store.get("vae.encoder.conv_in.weight").unwrap_err();
    assert!(err.to_string().contains("missing parameter"), "{err}");
}

/// The web page's path: only the header in memory, each tensor read by its byte range, as a
/// Blob is read; the same values as loading from memory, progress counted in bytes.
#[test]
fn a_generator_streams_from_its_header_and_byte_ranges() {
    let c = tiny(4);
    let (_, bytes) = model_file(4, 3);
    let head = &bytes[..header_size("model.safetensors", &bytes[..8]).unwrap()];
    let file = WeightFile::from_header("model.safetensors", head, bytes.len() as u64).unwrap();
    let precision = bitdance::model::Precision::F32;
    let mut loader = TensorLoader::generator(&gpu(), &c, &file, None, precision).unwrap();
    let (done, total) = loader.progress();
    assert_eq!(done, 0);
    let mut reads = 0;
    while let Some(read) = loader.next_read().cloned() {
        assert_eq!(read.file, LoadFile::Model);
        let range = read.range.start as usize..read.range.end as usize;
        if reads == 0 {
            let short = &bytes[range.start..range.end - 1];
            let e = loader.upload(short).unwrap_err().to_string();
            assert!(e.contains(&read.name) && e.contains("were read"), "{e}");
        }
        loader.upload(&bytes[range]).unwrap();
        reads += 1;
    }
    assert_eq!(loader.progress(), (total, total));
    assert_eq!(reads, generation_parameters(&c).len());
    let streamed = loader.finish().unwrap();
    let whole = WeightFile::parse(&bytes).unwrap();
    for spec in generation_parameters(&c) {
        assert_eq!(
            values(&streamed, &spec.name),
            whole.to_f32(&spec.name).unwrap(),
            "{}",
            spec.name
        );
    }
    // A header-only file holds no data: reading it in place is refused by name.
    let e = file.to_f32("cls_embedding.weight").unwrap_err().to_string();
    assert!(e.contains("only the header"), "{e}");
    // The header must describe exactly the file's length.
    let e = WeightFile::from_header("m", head, bytes.len() as u64 - 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m: truncated"), "{e}");
    let e = WeightFile::from_header("m", head, bytes.len() as u64 + 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("data length mismatch"), "{e}");
    let e = WeightFile::from_header("m", &head[..head.len() - 1], bytes.len() as u64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("were given"), "{e}");
    let e = header_size("m", &[1, 2]).unwrap_err().to_string();
    assert!(e.contains("shorter than the 8-byte"), "{e}");
    let e = header_size("m", &u64::MAX.to_le_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the 100 MB limit"), "{e}");
    // A loader stopped half way says what remains.
    let mut partial = TensorLoader::generator(&gpu(), &c, &file, None, precision).unwrap();
    let first = partial.next_read().cloned().unwrap();
    let range = first.range.start as usize..first.range.end as usize;
    partial.upload(&bytes[range]).unwrap();
    let e = partial.finish().err().unwrap().to_string();
    assert!(e.contains("tensors remain"), "{e}");
}

#[test]
fn a_separate_autoencoder_file_may_omit_the_vae_prefix() {
    let c = tiny(1);
    let (specs, bytes) = model_file(1, 2);
    let file = WeightFile::parse(&bytes).unwrap();
    let host: Vec<(String, Vec<usize>, Vec<f32>)> = specs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.shape.clone(),
                file.to_f32(&s.name).unwrap(),
            )
        })
        .collect();
    let pick = |vae: bool, strip: bool| {
        let views: Vec<(&str, &[usize], &[f32])> = host
            .iter()
            .filter(|(n, _, _)| n.starts_with("vae.") == vae)
            .map(|(n, s, d)| {
                let n = if strip {
                    n.strip_prefix("vae.").unwrap()
                } else {
                    n
                };
                (n, s.as_slice(), d.as_slice())
            })
            .collect();
        save_safetensors(&views, None).unwrap()
    };
    let ar_only = pick(false, false);
    let ae = pick(true, true);
    let ar_file = WeightFile::parse_named("ar.safetensors", &ar_only).unwrap();
    let ae_file = WeightFile::parse_named("ae.safetensors", &ae).unwrap();
    let store = load_generator(
        &gpu(),
        &c,
        &ar_file,
        Some(&ae_file),
        bitdance::model::Precision::F32,
    )
    .unwrap();
    let name = "vae.decoder.conv_out.weight";
    assert_eq!(values(&store, name), file.to_f32(name).unwrap());
    // Without the autoencoder file the AR-only file lacks the decoder: every tensor is named.
    let err = load_generator(&gpu(), &c, &ar_file, None, bitdance::model::Precision::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ar.safetensors"), "{err}");
    assert!(
        err.contains("missing: 'vae.decoder.conv_out.weight'"),
        "{err}"
    );
    assert!(
        err.contains("missing: 'vae.encoder.conv_in.weight'"),
        "{err}"
    );
}

#[test]
fn every_missing_unexpected_and_misshaped_tensor_is_listed_once() {
    let c = tiny(1);
    let (specs, bytes) = model_file(1, 3);
    let file = WeightFile::parse(&bytes).unwrap();
    let mut host: Vec<(String, Vec<usize>, Vec<f32>)> = specs
        .iter()
        .filter(|s| s.name != "norm.weight")
        .map(|s| {
            (
                s.name.clone(),
                s.shape.clone(),
                file.to_f32(&s.name).unwrap(),
            )
        })
        .collect();
    host.push(("extra.weight".into(), vec![2], vec![1.0, 2.0]));
    let bad = host
        .iter_mut()
        .find(|(n, _, _)| n == "proj_in.w2.weight")
        .unwrap();
    bad.1 = vec![bad.2.len()];
    let views: Vec<(&str, &[usize], &[f32])> = host
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    let broken = save_safetensors(&views, None).unwrap();
    let file = WeightFile::parse_named("broken.safetensors", &broken).unwrap();
    let err = load_generator(&gpu(), &c, &file, None, bitdance::model::Precision::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("broken.safetensors: 3 problem(s)"), "{err}");
    assert!(err.contains("missing: 'norm.weight' [16]"), "{err}");
    assert!(err.contains("unexpected: 'extra.weight' [2]"), "{err}");
    assert!(err.contains("misshaped: 'proj_in.w2.weight'"), "{err}");
}

#[test]
fn chunked_parameters_give_the_same_class_rows_and_values() {
    let c = tiny(4);
    let (_, bytes) = model_file(4, 4);
    let file = WeightFile::parse(&bytes).unwrap();
    let specs = generation_parameters(&c);
    let whole = ParamStore::from_weights(&gpu(), &file, &specs).unwrap();
    // One class row is 3 x 16 floats = 192 bytes: chunks of 2 rows split the 6-row table.
    let chunked = ParamStore::from_weights_chunked(&gpu(), &file, &specs, 4 * 192).unwrap();
    let table = chunked.get_chunks("cls_embedding.weight").unwrap();
    assert_eq!(table.len(), 3);
    for spec in &specs {
        assert_eq!(values(&chunked, &spec.name), values(&whole, &spec.name));
    }
    let classes = [5, 0, 3, 3];
    let a = embed_prefix(&c, &whole, &classes)
        .unwrap()
        .read_f32()
        .unwrap();
    let b = embed_prefix(&c, &chunked, &classes)
        .unwrap()
        .read_f32()
        .unwrap();
    assert_eq!(a, b);
}

/// Records every draw of a seeded generator in the `--noise` file layout.
struct Recorder {
    rng: Rng,
    x0: Vec<Vec<f32>>,
    eps: Vec<Vec<f32>>,
}

impl GaussianSource for Recorder {
    fn draw(&mut self, draw: Draw, n: usize) -> bitdance::Result<Vec<f32>> {
        let v = self.rng.normal_vec(n);
        match draw {
            Draw::Initial => {
                self.x0.push(v.clone());
                self.eps.push(Vec::new());
            }
            Draw::Step(_) => self.eps.last_mut().unwrap().extend(&v),
        }
        Ok(v)
    }
}

#[test]
fn recorded_noise_replays_a_run_exactly() {
    let c = tiny(4);
    let store =
        ParamStore::random(&gpu(), &generation_parameters(&c), &mut Rng::new(5), 0.2).unwrap();
    let settings = SampleSettings {
        cfg: 2.5,
        schedule: CfgSchedule::Linear,
        head_steps: 3,
    };
    let mut rec = Recorder {
        rng: Rng::new(6),
        x0: Vec::new(),
        eps: Vec::new(),
    };
    let classes = [1, 2];
    let first = generate_tokens(&c, &store, &classes, &settings, &mut rec, &mut |_, _| {})
        .unwrap()
        .read_f32()
        .unwrap();
    let (p, k) = (c.parallel_num, c.token_dim());
    let mut names = Vec::new();
    let mut shapes = Vec::new();
    for (s, x0) in rec.x0.iter().enumerate() {
        let rows = x0.len() / (p * k);
        // Step 0 of the linear schedule has no guidance: all 2B rows are sampled.
        assert_eq!(rows, if s == 0 { 4 } else { 2 }, "rows at AR step {s}");
        names.push((format!("x0.{s}"), format!("eps.{s}")));
        shapes.push((vec![rows, p, k], vec![3, rows, p, k]));
    }
    let views: Vec<(&str, &[usize], &[f32])> = names
        .iter()
        .zip(&shapes)
        .zip(rec.x0.iter().zip(&rec.eps))
        .flat_map(|(((x, e), (xs, es)), (xd, ed))| {
            [
                (x.as_str(), xs.as_slice(), xd.as_slice()),
                (e.as_str(), es.as_slice(), ed.as_slice()),
            ]
        })
        .collect();
    let bytes = save_safetensors(&views, None).unwrap();
    let file = WeightFile::parse_named("noise.safetensors", &bytes).unwrap();
    let replay = generate_tokens(
        &c,
        &store,
        &classes,
        &settings,
        &mut RecordedNoise::new(&file),
        &mut |_, _| {},
    )
    .unwrap()
    .read_f32()
    .unwrap();
    assert_eq!(replay, first);
    // Too few head steps recorded: the error names the tensor and its shape.
    let more = SampleSettings {
        head_steps: 4,
        ..settings
    };
    let err = generate_tokens(
        &c,
        &store,
        &classes,
        &more,
        &mut RecordedNoise::new(&file),
        &mut |_, _| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("noise.safetensors: 'eps.0' has shape [3, 4, 4, 32]"),
        "{err}"
    );
}

/// A model whose rows or feature maps cannot fit the device's binding limit is refused before
/// anything is uploaded, naming what does not fit and the limit.
#[test]
fn a_model_past_the_binding_limit_is_refused_by_name() {
    let c = tiny(4);
    let (_, bytes) = model_file(4, 5);
    let file = WeightFile::parse_named("model.safetensors", &bytes).unwrap();
    let options = bitdance::GpuOptions {
        max_binding_bytes: Some(256),
        ..bitdance::GpuOptions::from_env().unwrap()
    };
    let small = block_on(bitdance::Gpu::new(&options)).unwrap();
    assert_eq!(small.limits().max_storage_buffer_binding_size, 256);
    let precision = bitdance::model::Precision::F32;
    let e = TensorLoader::generator(&small, &c, &file, None, precision)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("max_storage_buffer_binding_size = 256")
            && (e.contains("feature map") || e.contains("a row of weight")),
        "{e}"
    );
    assert_eq!(small.stats().live_bytes, 0, "nothing was uploaded");
}

/// Large tensors are read a run of rows at a time (the web page's 98 MB class table): with
/// pieces of 1 KiB every tensor comes in many reads, and the values equal a whole load, at f32
/// and at f16.
#[test]
fn tensors_read_in_pieces_load_the_same_values() {
    let c = tiny(4);
    let (_, bytes) = model_file(4, 7);
    let file = WeightFile::parse_named("model.safetensors", &bytes).unwrap();
    for precision in [
        bitdance::model::Precision::F32,
        bitdance::model::Precision::F16,
    ] {
        let whole = load_generator(&gpu(), &c, &file, None, precision).unwrap();
        let mut loader =
            TensorLoader::generator_in_pieces(&gpu(), &c, &file, None, precision, 1024).unwrap();
        let mut reads = 0;
        while let Some(read) = loader.next_read().cloned() {
            loader
                .upload(file.bytes(read.range.clone()).unwrap())
                .unwrap();
            reads += 1;
        }
        assert!(reads > 2 * generation_parameters(&c).len(), "{reads} reads");
        let pieced = loader.finish().unwrap();
        for spec in generation_parameters(&c) {
            assert_eq!(
                values(&pieced, &spec.name),
                values(&whole, &spec.name),
                "{} at {precision:?}",
                spec.name
            );
        }
    }
}

/// Rows written in runs that cross the row chunks of a parameter land where they belong.
#[test]
fn rows_written_across_chunks_land_in_place() {
    let spec = ParamSpec {
        name: "table".into(),
        shape: vec![10, 6],
    };
    let mut store = ParamStore::new();
    // 48 bytes per chunk half: 2 rows of 6 f32 each, so 5 chunks.
    store.allocate(&gpu(), &spec, 96, false).unwrap();
    assert_eq!(store.get_chunks("table").unwrap().len(), 5);
    let all: Vec<f32> = (0..60).map(|v| v as f32).collect();
    store.write_rows("table", 0, &all[..18]).unwrap();
    store.write_rows("table", 3, &all[18..42]).unwrap();
    store.write_rows("table", 7, &all[42..]).unwrap();
    assert_eq!(values(&store, "table"), all);
    let e = store.write_rows("table", 9, &all[..12]).unwrap_err();
    assert!(e.to_string().contains("rows past"), "{e}");
}

/// A store walked part by part (each row chunk under its own name, as the optimizer and the
/// EMA key them) and copied keeps its chunks; the parts join into the whole parameter again,
/// in chunk order even past ten chunks, and a missing chunk is refused by name.
#[test]
fn row_chunks_walk_as_parts_and_join_whole() {
    use bitdance::model::{join_row_parts, part_name, split_part_name};
    let spec = ParamSpec {
        name: "table".into(),
        shape: vec![12, 6],
    };
    let mut store = ParamStore::new();
    // One row per chunk: 12 chunks, so "#rows10" sorts before "#rows2" by name.
    store.allocate(&gpu(), &spec, 48, false).unwrap();
    let all: Vec<f32> = (0..72).map(|v| v as f32).collect();
    store.write_rows("table", 0, &all).unwrap();
    let bias = bitdance::Tensor::from_f32(&gpu(), &[3], &[1.0, 2.0, 3.0]).unwrap();
    store.insert("bias", bias);
    let names: Vec<String> = store.iter().map(|(n, _)| n.into_owned()).collect();
    assert_eq!(names.len(), 13);
    assert!(names.contains(&part_name("table", 11)) && names.contains(&"bias".to_string()));
    assert_eq!(
        split_part_name(&part_name("ema.table", 7)),
        Some(("ema.table", 7))
    );
    assert_eq!(split_part_name("table"), None);

    let mut copy = ParamStore::new();
    for (name, t) in store.iter().collect::<Vec<_>>().into_iter().rev() {
        copy.insert(&name, t.clone());
    }
    assert_eq!(copy.get_chunks("table").unwrap().len(), 12);
    assert_eq!(copy.shape("table").unwrap(), [12, 6]);
    assert_eq!(values(&copy, "table"), all);
    let file = block_on(copy.to_safetensors(None)).unwrap();
    let file = WeightFile::parse_named("copy", &file).unwrap();
    assert_eq!(file.shape("table").unwrap(), [12, 6]);
    assert_eq!(file.to_f32("table").unwrap(), all);

    // A parameter is held one way: a whole tensor replaces its chunks, and chunks the tensor.
    let whole = bitdance::Tensor::from_f32(&gpu(), &[12, 6], &all).unwrap();
    copy.insert("table", whole.clone());
    assert_eq!(copy.get_chunks("table").unwrap().len(), 1);
    assert_eq!(
        copy.iter().filter(|(n, _)| n.starts_with("table")).count(),
        1
    );
    copy.insert_chunks("table", vec![whole.clone()]);
    assert!(copy.get("table").is_err(), "held in chunks now");

    let host = |skip: usize| {
        (0..12)
            .filter(|&i| i != skip)
            .map(|i| {
                (
                    part_name("t", i),
                    vec![1, 6],
                    all[i * 6..i * 6 + 6].to_vec(),
                )
            })
            .collect::<Vec<_>>()
    };
    let joined = join_row_parts(host(99)).unwrap();
    assert_eq!(joined, [("t".to_string(), vec![12, 6], all.clone())]);
    let e = join_row_parts(host(4)).unwrap_err().to_string();
    assert!(e.contains("'t'") && e.contains("missing"), "{e}");
}
