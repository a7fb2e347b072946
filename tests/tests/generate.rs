//! End to end on a tiny random model: class prefixes, cached AR steps, the head sampler with
//! CFG, and the decoder, for 1x and next-patch models.

use bitdance::model::{
    ar_parameters, cfg_at, decode, decoder_parameters, generate_tokens, tokens_to_latents,
    CfgSchedule, ModelConfig, ParamStore, SampleSettings,
};
use bitdance::rng::Rng;
use bitdance_tests::{gpu, tiny_config as tiny};

/// The AR model, head and decoder of `c` with random weights (std 0.2) from `seed`.
fn random_model(c: &ModelConfig, seed: u64) -> ParamStore {
    let mut specs = ar_parameters(c);
    specs.extend(decoder_parameters(&c.vae));
    ParamStore::random(&gpu(), &specs, &mut Rng::new(seed), 0.2).unwrap()
}

/// Guidance 3 on the official linear schedule, `head_steps` head steps.
fn guided(head_steps: usize) -> SampleSettings {
    SampleSettings {
        cfg: 3.0,
        schedule: CfgSchedule::Linear,
        head_steps,
    }
}

#[test]
fn cfg_schedules_follow_the_official_rule() {
    let s = SampleSettings {
        cfg: 4.0,
        schedule: CfgSchedule::Linear,
        head_steps: 1,
    };
    assert_eq!(
        cfg_at(&s, 0, 64),
        1.0,
        "step 0 of the linear schedule applies no guidance"
    );
    assert_eq!(cfg_at(&s, 32, 64), 2.5);
    let s = SampleSettings {
        schedule: CfgSchedule::Constant,
        ..s
    };
    assert_eq!(cfg_at(&s, 0, 64), 4.0);
    let s = SampleSettings { cfg: 1.0, ..s };
    assert_eq!(cfg_at(&s, 10, 64), 1.0);
}

#[test]
fn tiny_models_generate_decodable_tokens_deterministically() {
    for (p, cfg) in [(1usize, 3.0f32), (4, 3.0), (4, 1.0)] {
        let c = tiny(p);
        let g = gpu();
        let mut rng = Rng::new(4);
        let mut specs = ar_parameters(&c);
        specs.extend(decoder_parameters(&c.vae));
        let store = ParamStore::random(&g, &specs, &mut rng, 0.2).unwrap();
        let settings = SampleSettings {
            cfg,
            schedule: CfgSchedule::Linear,
            head_steps: 3,
        };
        let mut calls = 0;
        let tokens = generate_tokens(
            &c,
            &store,
            &[0, 4],
            &settings,
            &mut Rng::new(99),
            &mut |_, _| calls += 1,
        )
        .unwrap();
        assert_eq!(calls, c.ar_steps());
        assert_eq!(tokens.shape(), &[2, c.image_tokens(), 32]);
        let host = tokens.read_f32().unwrap();
        assert!(host.iter().all(|v| *v == 1.0 || *v == -1.0));
        let again = generate_tokens(
            &c,
            &store,
            &[0, 4],
            &settings,
            &mut Rng::new(99),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            again.read_f32().unwrap(),
            host,
            "p={p}: same seed, same tokens"
        );
        let z = tokens_to_latents(&c, &host).unwrap();
        let image = decode(&g, &c.vae, &store, &z, [2, 32, c.grid(), c.grid()]).unwrap();
        assert_eq!(image.shape(), &[2, 3, 8, 8]);
        assert!(image.read_f32().unwrap().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn latents_undo_the_patch_raster_order() {
    let c = tiny(4);
    let t = c.image_tokens();
    // Token i carries the value i in every channel; cell (r, col) of the 4x4 grid must hold
    // the index of its position in patch-raster order.
    let tokens: Vec<f32> = (0..t).flat_map(|i| vec![i as f32; 32]).collect();
    let z = tokens_to_latents(&c, &tokens).unwrap();
    let want = [
        0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 12.0, 13.0, 10.0, 11.0, 14.0, 15.0,
    ];
    assert_eq!(&z[..16], &want);
    assert_eq!(&z[16 * 31..], &want);
}

#[test]
fn tokens_and_latents_convert_both_ways() {
    use bitdance::model::latents_to_tokens;
    for p in [1, 4] {
        let c = tiny(p);
        let n = 2 * c.image_tokens() * 32;
        let tokens: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let z = tokens_to_latents(&c, &tokens).unwrap();
        assert_ne!(z, tokens);
        assert_eq!(latents_to_tokens(&c, &z).unwrap(), tokens, "p={p}");
    }
}

/// The token agreement of 16-bit linear weights on the official B-4x architecture with random
/// weights (std 0.02, as `bench generate`), 100 head steps, the same draws at f32 and f16.
/// Minutes on lavapipe: run with `cargo test --release -p bitdance-tests --test generate --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn half_weights_agree_with_f32_on_random_b4x() {
    use bitdance::model::{generation_parameters, half_weights, ModelConfig, Precision};
    let c = ModelConfig::builtin("B-4x").unwrap();
    let g = gpu();
    let settings = SampleSettings {
        cfg: 3.9,
        schedule: CfgSchedule::Linear,
        head_steps: 100,
    };
    let sample = |precision| {
        let half = half_weights(&c, precision);
        let specs = generation_parameters(&c);
        let store = ParamStore::random_in(&g, &specs, &mut Rng::new(0), 0.02, &half).unwrap();
        let tokens = generate_tokens(
            &c,
            &store,
            &[207],
            &settings,
            &mut Rng::new(1),
            &mut |_, _| {},
        );
        tokens.unwrap().read_f32().unwrap()
    };
    let (a, b) = (sample(Precision::F32), sample(Precision::F16));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    let step = first.map(|i| i / c.token_dim() / c.parallel_num);
    eprintln!(
        "B-4x random weights: f16 agrees on {same} of {} token bits ({:.3}%); first differing AR step {step:?}",
        a.len(),
        100.0 * same as f64 / a.len() as f64
    );
    assert!(same as f64 >= 0.999 * a.len() as f64);
}

#[test]
fn a_stepwise_run_previews_and_ends_with_the_same_tokens() {
    use bitdance::model::{decode_tokens, TokenSampler};
    let c = tiny(4);
    let store = random_model(&c, 4);
    let settings = guided(3);
    let whole = generate_tokens(
        &c,
        &store,
        &[0, 4],
        &settings,
        &mut Rng::new(7),
        &mut |_, _| {},
    )
    .unwrap()
    .read_f32()
    .unwrap();
    let mut sampler = TokenSampler::new(&c, &store, &[0, 4], &settings).unwrap();
    let mut noise = Rng::new(7);
    let k = c.token_dim();
    let per_image = c.image_tokens() * k;
    assert!(sampler.step(&mut noise).unwrap());
    // After one step: the first patch of each image sampled (±1), the rest zeros.
    let preview = sampler.tokens_so_far().unwrap().read_f32().unwrap();
    for image in preview.chunks(per_image) {
        let (head, rest) = image.split_at(c.parallel_num * k);
        assert!(head.iter().all(|v| v.abs() == 1.0) && rest.iter().all(|&v| v == 0.0));
    }
    let shown =
        bitdance::gpu::block_on(decode_tokens(&c, &store, &sampler.tokens_so_far().unwrap()));
    assert_eq!(shown.unwrap().count, 2);
    // Driven to the end a step at a time: the same draws, the same tokens.
    while sampler.step(&mut noise).unwrap() {}
    assert_eq!(sampler.done(), c.ar_steps());
    assert!(
        !sampler.step(&mut noise).unwrap(),
        "a finished run takes no step"
    );
    assert_eq!(sampler.finish().unwrap().read_f32().unwrap(), whole);
    // A run stopped early has no final tokens.
    let mut stopped = TokenSampler::new(&c, &store, &[0, 4], &settings).unwrap();
    stopped.step(&mut Rng::new(7)).unwrap();
    let e = stopped.finish().unwrap_err().to_string();
    assert!(e.contains("stopped after 1 of"), "{e}");
}

#[test]
fn an_image_run_samples_its_passes_as_the_cli_does() {
    use bitdance::model::{decode_tokens, Precision};
    use bitdance::studio::{token_hash, ImageRun, RecipeModel, SampleRequest};
    let c = tiny(4);
    let store = random_model(&c, 5);
    let settings = guided(2);
    let classes = [1, 1, 3];
    // `bitdance generate -c 1,1,3 --batch 2 --seed 9`: passes of 2 and 1 from one generator.
    let mut rng = Rng::new(9);
    let mut tokens = Vec::new();
    for group in classes.chunks(2) {
        let pass = generate_tokens(&c, &store, group, &settings, &mut rng, &mut |_, _| {}).unwrap();
        tokens.extend(
            bitdance::gpu::block_on(decode_tokens(&c, &store, &pass))
                .unwrap()
                .tokens,
        );
    }
    let model = RecipeModel {
        name: "tiny".into(),
        sha256: "ab".repeat(32),
        vae_sha256: None,
        config: "custom".into(),
    };
    let request = |classes: &[u32], seed| SampleRequest {
        classes: classes.to_vec(),
        batch: 2,
        settings,
        seed,
    };
    let mut run = ImageRun::new(&c, &store, model, Precision::F32, &request(&classes, 9)).unwrap();
    assert_eq!((run.batch(), run.steps()), (2, 2 * c.ar_steps()));
    let mut previews = 0;
    while run.step().unwrap() {
        if run.done() % c.ar_steps() == 1 {
            // The preview shows the pass being sampled: 2 images side by side, then 1.
            let grid = bitdance::gpu::block_on(run.preview()).unwrap();
            let side = c.resolution as u32;
            let expected = if run.done() < c.ar_steps() {
                (2 * side + 2, side)
            } else {
                (side, side)
            };
            assert_eq!((grid.width(), grid.height()), expected);
            previews += 1;
        }
    }
    assert_eq!((run.done(), previews), (run.steps(), 2));
    let images = bitdance::gpu::block_on(run.finish()).unwrap();
    assert_eq!(images.len(), 3);
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image.index, i);
        assert_eq!(image.recipe.classes, classes);
        assert_eq!((image.recipe.batch, image.recipe.seed), (2, 9));
        assert_eq!(
            image.recipe.token_hash,
            token_hash(&tokens),
            "the CLI's draws"
        );
        let back = bitdance::studio::Recipe::from_png("kept", &image.png).unwrap();
        assert_eq!(back, image.recipe);
    }
    assert_ne!(images[0].rgb, images[2].rgb);
    // Classes out of range and empty runs are refused by name.
    let model = || RecipeModel {
        name: "tiny".into(),
        sha256: "ab".repeat(32),
        vae_sha256: None,
        config: "custom".into(),
    };
    let bad = c.num_classes as u32;
    let e = ImageRun::new(&c, &store, model(), Precision::F32, &request(&[0, bad], 1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&format!("class {bad} is out of range")), "{e}");
    let e = ImageRun::new(&c, &store, model(), Precision::F32, &request(&[], 1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("at least one image"), "{e}");
}

/// 16-bit weights read as WGSL f16 arrays give the tokens and the image of the packed form bit
/// for bit (the same halves, widened exactly, summed in the same order), 1x and next-patch.
/// Each form on a device of its own, so no other test sees a form switched under it.
#[test]
fn half_weights_sample_the_same_bits_packed_or_as_f16_arrays() {
    use bitdance::gpu::{F16Form, GpuOptions};
    use bitdance::model::{half_weights, Precision};
    use bitdance::{DType, Gpu};
    let open = |form| {
        let options = GpuOptions {
            f16_form: Some(form),
            ..GpuOptions::from_env().unwrap()
        };
        bitdance::gpu::block_on(Gpu::new(&options)).unwrap()
    };
    if !gpu().f16_forms().contains(&F16Form::Arrays) {
        eprintln!("skipped: {} has no SHADER_F16", gpu().adapter().name);
        return;
    }
    let (packed, arrays) = (open(F16Form::Packed), open(F16Form::Arrays));
    assert_eq!(arrays.f16_form(), F16Form::Arrays);
    for p in [1usize, 4] {
        let c = tiny(p);
        let sample = |g: &Gpu| {
            let mut specs = ar_parameters(&c);
            specs.extend(decoder_parameters(&c.vae));
            let half = half_weights(&c, Precision::F16);
            let store = ParamStore::random_in(g, &specs, &mut Rng::new(5), 0.2, &half).unwrap();
            let halved = store
                .iter()
                .filter(|(_, t)| t.dtype() == DType::F16)
                .count();
            assert!(halved > 4, "p={p}: only {halved} tensors in 16 bits");
            let tokens = generate_tokens(
                &c,
                &store,
                &[1, 3],
                &guided(4),
                &mut Rng::new(8),
                &mut |_, _| {},
            )
            .unwrap()
            .read_f32()
            .unwrap();
            let z = tokens_to_latents(&c, &tokens).unwrap();
            let image = decode(g, &c.vae, &store, &z, [2, 32, c.grid(), c.grid()]).unwrap();
            (tokens, image.read_f32().unwrap())
        };
        let (a, b) = (sample(&packed), sample(&arrays));
        assert!(a.0 == b.0, "p={p}: the tokens differ between the forms");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&a.1) == bits(&b.1), "p={p}: the images differ");
    }
}
