//! The studio driven through egui_kittest (AccessKit queries), its GPU on the present adapter,
//! its files in a temporary BITDANCE_HOME.

use std::time::{Duration, Instant};

use bitdance::studio::Recipe;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

use crate::app::BitDanceApp;

const LIMIT: Duration = Duration::from_secs(180);

/// One home for every test of this process (the variable is process-wide).
fn home() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = HOME.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));
    // SAFETY: set once, before any app of this process reads it.
    unsafe { std::env::set_var("BITDANCE_HOME", dir.path()) };
    dir.path()
}

/// Held shared by every test's app, and alone by a test that changes what every app starts on
/// (the adapter choice in the shared home).
static SETTINGS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// An app in the test home, and its share of the settings.
struct TestApp {
    harness: Harness<'static, BitDanceApp>,
    _shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

impl std::ops::Deref for TestApp {
    type Target = Harness<'static, BitDanceApp>;
    fn deref(&self) -> &Self::Target {
        &self.harness
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.harness
    }
}

fn app_harness() -> Harness<'static, BitDanceApp> {
    home();
    let app = BitDanceApp::with_context(egui::Context::default());
    let harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut BitDanceApp| app.show(ui), app);
    crate::app::style(&harness.ctx); // the harness draws with its own context
    harness
}

fn harness() -> TestApp {
    let shared = SETTINGS.read().unwrap_or_else(|e| e.into_inner());
    TestApp {
        harness: app_harness(),
        _shared: Some(shared),
    }
}

/// Steps the UI until `done` holds, failing after `LIMIT`.
fn step_until(
    harness: &mut Harness<'_, BitDanceApp>,
    what: &str,
    done: impl Fn(&Harness<'_, BitDanceApp>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < LIMIT,
            "{what} did not happen within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
}

fn ready(h: &mut Harness<'_, BitDanceApp>) {
    step_until(h, "the model loading", |h| {
        h.query_by_label("Generate").is_some()
    });
}

/// A fresh app, its model loaded, with one image generated at `seed` (kept in the gallery).
fn generated_with_seed(seed: u64) -> TestApp {
    let mut h = harness();
    ready(&mut h);
    h.state_mut().generate.seed = seed;
    generate_and_wait(&mut h);
    h
}

/// Clicks Generate and waits for the image.
fn generate_and_wait(h: &mut Harness<'_, BitDanceApp>) {
    h.get_by_label("Generate").click();
    h.step();
    step_until(h, "the image", |h| {
        h.query_by_label_contains("done in").is_some()
    });
}

/// Waits for a reproduction's verdict, which must be "the same tokens".
fn assert_reproduced(h: &mut Harness<'_, BitDanceApp>) {
    step_until(h, "the reproduction", |h| {
        h.query_by_label_contains("Reproduced: the same tokens")
            .is_some()
            || h.query_by_label_contains("Not reproduced").is_some()
    });
    assert!(h
        .query_by_label_contains("Reproduced: the same tokens")
        .is_some());
}

#[test]
fn ctrl_enter_generates_as_the_button_does() {
    let mut h = harness();
    ready(&mut h);
    // The gallery opens with what other tests kept in the shared home: count from here.
    let kept = h.state().gallery.items.len();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    h.step();
    step_until(&mut h, "the image", |h| {
        h.query_by_label_contains("done in").is_some()
    });
    assert_eq!(h.state().gallery.items.len(), kept + 1);
}

#[test]
fn generate_shows_the_image_forming_then_keeps_it_with_its_recipe() {
    let mut h = harness();
    ready(&mut h);
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "a preview", |h| {
        h.query_by_label_contains("preview after AR step").is_some()
    });
    step_until(&mut h, "the image", |h| {
        h.query_by_label_contains("done in").is_some()
    });
    let item = h.state().gallery.items[0].clone();
    let png = std::fs::read(&item.path).unwrap();
    let recipe = Recipe::from_png("kept", &png).unwrap();
    assert_eq!(recipe, item.recipe);
    assert!(item.path.starts_with(home()));
}

#[test]
fn typing_a_class_finds_it_and_picks_it() {
    let mut h = harness();
    ready(&mut h);
    h.get_by_label("Search classes").click();
    h.step();
    h.get_by_label("Search classes").type_text("7");
    h.step();
    h.get_by_label("7").click();
    h.step();
    h.step();
    let chosen: Vec<usize> = h.state().generate.chosen.iter().map(|c| c.index).collect();
    assert_eq!(chosen, [0, 7], "class 7 joins the chosen ones");
    assert!(h.query_by_label("7 ×").is_some(), "and shows as a chip");
}

#[test]
fn a_kept_image_reproduces_with_the_same_tokens() {
    let mut h = generated_with_seed(77);
    h.get_by_label("Gallery").click();
    h.step();
    h.get_all_by_label("Reproduce").next().unwrap().click();
    h.step();
    assert_reproduced(&mut h);
}

#[test]
fn stop_ends_a_run_between_ar_steps() {
    let mut h = harness();
    ready(&mut h);
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "the run starting", |h| {
        h.query_by_label_contains("step ").is_some()
    });
    h.get_by_label("Stop").click();
    step_until(&mut h, "the stop", |h| {
        h.query_by_label_contains("stopped after AR step").is_some()
    });
}

#[test]
fn a_lost_device_is_reopened_and_the_model_reloaded() {
    let mut h = harness();
    ready(&mut h);
    h.state().worker.send(crate::worker::Command::LoseDevice);
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "the recovery", |h| {
        h.query_by_label_contains("was reopened").is_some()
    });
    step_until(&mut h, "the model again", |h| {
        h.query_by_label("Generate").is_some() && h.state().generate.progress.is_none()
    });
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "an image on the new device", |h| {
        h.query_by_label_contains("done in").is_some()
    });
}

#[test]
fn a_model_file_opens_is_remembered_and_a_pt_file_is_read_safely() {
    let mut h = harness();
    ready(&mut h);
    let file = home().join("digits.safetensors");
    std::fs::write(&file, bitdance::model::DEFAULT_MODEL_BYTES).unwrap();
    h.state_mut().open_files(vec![file.clone()]);
    step_until(&mut h, "the opened model", |h| {
        h.state()
            .model
            .as_ref()
            .is_some_and(|m| m.path.as_deref() == Some(file.as_path()))
    });
    h.step();
    assert!(h
        .get_all_by_label_contains("digits.safetensors")
        .next()
        .is_some());
    assert!(crate::storage::recent_models()
        .iter()
        .any(|r| r.path == file));
    // An official-format .pt checkpoint that is no BitDance model: read by the safe reader,
    // then refused by name, and the default model comes back.
    let pt = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/pt/fixture-checkpoint.pt");
    h.state_mut().open_files(vec![pt]);
    step_until(&mut h, "the refusal", |h| {
        h.state()
            .notice
            .as_ref()
            .is_some_and(|(text, error)| *error && text.contains("fixture-checkpoint.pt"))
    });
    step_until(&mut h, "the default model again", |h| {
        h.state().model.as_ref().is_some_and(|m| m.path.is_none())
    });
}

#[test]
fn the_weights_reload_at_32_bits_and_generate() {
    use bitdance::model::Precision;
    let mut h = harness();
    ready(&mut h);
    h.get_by_label("Models").click();
    h.step();
    assert!(
        h.query_by_label("weights on the GPU").is_some(),
        "the Models panel has the precision switch"
    );
    h.state()
        .worker
        .send(crate::worker::Command::SetPrecision(Precision::F32));
    step_until(&mut h, "the reload at f32", |h| {
        h.state()
            .model
            .as_ref()
            .is_some_and(|m| m.precision == Precision::F32)
    });
    h.get_by_label("Create").click();
    h.step();
    generate_and_wait(&mut h);
    assert_eq!(h.state().gallery.items[0].recipe.precision, Precision::F32);
}

#[test]
fn two_kept_images_compare_side_by_side_with_their_differences() {
    let mut h = harness();
    ready(&mut h);
    h.state_mut().generate.seed = 500;
    h.state_mut().generate.per_class = 2;
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "two images", |h| {
        h.state().gallery.items.len() >= 2 && h.state().generate.progress.is_none()
    });
    let seeds: Vec<u64> = h.state().gallery.items[..2]
        .iter()
        .map(|i| i.recipe.seed)
        .collect();
    assert_eq!(seeds, [501, 500], "the newest first, one seed apart");
    h.get_by_label("Gallery").click();
    h.step();
    for _ in 0..2 {
        let unpicked: Vec<_> = h.get_all_by_label("Compare").collect();
        let n = h.state().gallery.compare.len();
        unpicked[n].click();
        h.step();
    }
    h.step();
    assert!(h.query_by_label_contains("Differences:").is_some());
    assert!(h.query_by_label_contains("seed: 501 vs 500").is_some());
    assert!(h.query_by_label_contains("token_hash").is_some());
}

#[test]
fn a_batch_samples_images_together_and_reproduces_as_one_run() {
    let mut h = harness();
    ready(&mut h);
    let g = &mut h.state_mut().generate;
    (g.seed, g.per_class, g.batch) = (700, 3, 2);
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "three images", |h| {
        h.state().gallery.items.len() >= 3 && h.state().generate.progress.is_none()
    });
    // Runs of 2 and 1 images, a seed each; the newest first.
    let runs: Vec<(u64, usize, usize)> = h.state().gallery.items[..3]
        .iter()
        .map(|i| (i.recipe.seed, i.recipe.batch, i.index))
        .collect();
    assert_eq!(runs, [(701, 1, 0), (700, 2, 1), (700, 2, 0)]);
    let pair = &h.state().gallery.items[1];
    assert_eq!(pair.recipe.classes.len(), 2);
    assert!(
        pair.caption().contains("image 2 of 2 (batch 2)"),
        "{}",
        pair.caption()
    );
    // The kept files name their place in the run, so a restart finds it again.
    let reloaded = crate::storage::gallery();
    let again = reloaded.iter().find(|i| i.path == pair.path).unwrap();
    assert_eq!(again.index, 1);
    // Reproducing either image of the pair re-runs the pair.
    h.get_by_label("Gallery").click();
    h.step();
    let reproduce: Vec<_> = h.get_all_by_label("Reproduce").collect();
    reproduce[1].click();
    h.step();
    assert_reproduced(&mut h);
}

/// Two classes of three Fashion-MNIST images each, as a folder of class folders.
fn small_dataset() -> std::path::PathBuf {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/datasets/fashion-mnist/train");
    let root = home().join("small-dataset");
    for class in ["0-tshirt", "1-trouser"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..3 {
            let name = format!("{i:04}.png");
            std::fs::copy(assets.join(class).join(&name), root.join(class).join(&name)).unwrap();
        }
    }
    root
}

#[test]
fn a_run_of_new_classes_alone_is_warned_that_the_model_may_forget_its_own() {
    use crate::finetune::RunStatus;
    use bitdance::train::FinetuneOptions;
    let mut h = harness();
    ready(&mut h);
    // The small dataset's folders without their leading indices: two new classes, no digit.
    let root = home().join("new-classes-only");
    for (from, to) in [("0-tshirt", "tshirt"), ("1-trouser", "trouser")] {
        let to = root.join(to);
        std::fs::create_dir_all(&to).unwrap();
        for image in std::fs::read_dir(small_dataset().join(from)).unwrap() {
            let image = image.unwrap().path();
            std::fs::copy(&image, to.join(image.file_name().unwrap())).unwrap();
        }
    }
    let f = &mut h.state_mut().finetune;
    f.data = crate::runs::DataSource::Folder(root);
    f.options = FinetuneOptions {
        steps: 1,
        batch: 2,
        flips: false,
        ..FinetuneOptions::default()
    };
    h.get_by_label("Fine-tune").click();
    h.step();
    h.get_by_label("Start fine-tuning").click();
    step_until(&mut h, "the run", |h| {
        matches!(run_status(h), Some(RunStatus::Done | RunStatus::Failed(_)))
    });
    assert_eq!(run_status(&h), Some(RunStatus::Done));
    h.step();
    assert!(h
        .query_by_label_contains("none of the model's 10 classes")
        .is_some());
}

fn run_status(h: &Harness<'_, BitDanceApp>) -> Option<crate::finetune::RunStatus> {
    h.state().finetune.view.as_ref().map(|v| v.status.clone())
}

fn run_dir(h: &Harness<'_, BitDanceApp>) -> bitdance_files::run_dir::RunDir {
    h.state()
        .finetune
        .view
        .as_ref()
        .unwrap()
        .request
        .dir
        .clone()
}

fn start_small_run(h: &mut Harness<'_, BitDanceApp>) {
    use bitdance::train::FinetuneOptions;
    let data = small_dataset();
    let f = &mut h.state_mut().finetune;
    f.data = crate::runs::DataSource::Folder(data);
    f.options = FinetuneOptions {
        steps: 8,
        batch: 2,
        lr: 1e-3,
        warmup: 1,
        ema: 0.9,
        seed: 5,
        flips: false,
        ..FinetuneOptions::default()
    };
    f.sample_every = 4;
    f.checkpoint_every = 3;
    h.get_by_label("Fine-tune").click();
    h.step();
    h.get_by_label("Start fine-tuning").click();
    h.step();
}

#[test]
fn finetuning_paused_and_resumed_after_a_restart_takes_the_steps_of_an_uninterrupted_run() {
    use crate::finetune::RunStatus;
    let mut h = harness();
    ready(&mut h);
    // The reference: eight steps without a break.
    start_small_run(&mut h);
    step_until(&mut h, "the uninterrupted run", |h| {
        matches!(run_status(h), Some(RunStatus::Done | RunStatus::Failed(_)))
    });
    assert_eq!(run_status(&h), Some(RunStatus::Done));
    let whole = run_dir(&h);
    let reference = whole.losses();
    assert_eq!(reference.len(), 8);
    assert!(whole.sample_path(4).exists() && whole.sample_path(8).exists());
    h.step();
    assert!(h.query_by_label_contains("Samples at step 8").is_some());
    assert!(h.query_by_label_contains("Done: 8 steps").is_some());

    // The same run on a device lost after its fourth step: it continues from the checkpoint of
    // step 3 on a reopened device, and takes the same steps.
    h.state().worker.lose_device_after_step(4);
    start_small_run(&mut h);
    step_until(&mut h, "the run through a lost device", |h| {
        matches!(run_status(h), Some(RunStatus::Done | RunStatus::Failed(_)))
    });
    assert_eq!(run_status(&h), Some(RunStatus::Done));
    assert!(h
        .state()
        .notice
        .as_ref()
        .is_some_and(|(text, _)| text.contains("continues from its last checkpoint")));
    assert_eq!(
        run_dir(&h).losses(),
        reference,
        "the same steps after the recovery"
    );

    h.get_by_label("Dismiss").click();
    h.step();
    // The same run, paused after a couple of steps.
    start_small_run(&mut h);
    step_until(&mut h, "two steps", |h| {
        h.state()
            .finetune
            .view
            .as_ref()
            .is_some_and(|v| v.step >= 2)
    });
    h.get_by_label("Pause").click();
    h.step();
    step_until(&mut h, "the pause", |h| {
        !matches!(
            run_status(h),
            Some(RunStatus::Training | RunStatus::Pausing)
        )
    });
    assert_eq!(run_status(&h), Some(RunStatus::Paused));
    let paused = run_dir(&h);
    assert_ne!(paused, whole);
    let at = h.state().finetune.view.as_ref().unwrap().step;
    assert!((2..8).contains(&at), "paused at step {at}");

    // Quit, start the app again, continue the run from the list.
    drop(h);
    let mut h = harness();
    ready(&mut h);
    h.get_by_label("Fine-tune").click();
    h.step();
    h.get_all_by_label("Continue").next().unwrap().click();
    h.step();
    step_until(&mut h, "the resumed run", |h| {
        matches!(run_status(h), Some(RunStatus::Done | RunStatus::Failed(_)))
    });
    assert_eq!(run_status(&h), Some(RunStatus::Done));
    assert_eq!(run_dir(&h), paused);
    assert_eq!(
        paused.losses(),
        reference,
        "the same losses as the uninterrupted run"
    );

    // The fine-tuned model generates.
    h.get_by_label("Use this model").click();
    h.step();
    let model = paused.model_path();
    step_until(&mut h, "the fine-tuned model", |h| {
        h.state()
            .model
            .as_ref()
            .is_some_and(|m| m.path.as_deref() == Some(model.as_path()))
    });
}

#[test]
fn another_adapter_is_chosen_in_the_gpu_panel_and_used_at_the_next_start() {
    let _alone = SETTINGS.write().unwrap_or_else(|e| e.into_inner());
    let alone = || TestApp {
        harness: app_harness(),
        _shared: None,
    };
    let mut h = alone();
    ready(&mut h);
    h.get_by_label("GPU").click();
    h.step();
    step_until(&mut h, "the adapters", |h| !h.state().adapters.is_empty());
    h.step();
    assert!(
        h.query_by_label("in use").is_some(),
        "the adapter in use is marked"
    );
    let current = match &h.state().gpu {
        crate::app::GpuState::Ready(a) => a.summary.clone(),
        _ => panic!("the GPU is open"),
    };
    let adapters = h.state().adapters.clone();
    let Some(other) = adapters
        .iter()
        .find(|a| (&a.name, &a.backend) != (&current.name, &current.backend))
        .cloned()
    else {
        // One adapter only: nothing to move to; its Use button must not exist.
        assert!(h.query_by_label("Use").is_none());
        return;
    };
    let at = adapters.iter().position(|a| *a == other).unwrap();
    let before = adapters[..at]
        .iter()
        .filter(|a| (&a.name, &a.backend) != (&current.name, &current.backend))
        .count();
    h.get_all_by_label("Use").nth(before).unwrap().click();
    h.step();
    let on_other = |h: &Harness<'_, BitDanceApp>| match &h.state().gpu {
        crate::app::GpuState::Ready(a) => {
            a.summary.name == other.name && a.summary.backend == other.backend
        }
        _ => false,
    };
    step_until(&mut h, "the other adapter", |h| {
        on_other(h) && h.state().model.is_some()
    });
    h.get_by_label("Create").click();
    h.step();
    step_until(&mut h, "the model there", |h| {
        h.query_by_label("Generate").is_some()
    });
    h.get_by_label("Generate").click();
    h.step();
    step_until(&mut h, "an image on the other adapter", |h| {
        h.query_by_label_contains("done in").is_some()
    });
    // The choice holds at the next start.
    drop(h);
    let mut h = alone();
    step_until(&mut h, "the GPU", |h| on_other(h));
    // Back to the default, for the other tests of this process.
    crate::storage::choose_adapter(&crate::storage::AdapterChoice {
        backend: current.backend.to_ascii_lowercase(),
        name: current.name.clone(),
    })
    .unwrap();
}

/// Every panel drawn by egui's wgpu renderer (on lavapipe) matches its committed image in
/// `desktop/tests/snapshots` (`UPDATE_SNAPSHOTS=1` rewrites them after a deliberate change).
/// What differs between machines is fixed first: the adapter's name and driver (llvmpipe names
/// the CPU's vector width), the random seed, and the lists read from the shared test folder.
#[test]
fn every_panel_matches_its_committed_snapshot() {
    let shared = SETTINGS.read().unwrap_or_else(|e| e.into_inner());
    home();
    let app = BitDanceApp::with_context(egui::Context::default());
    let harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_ui_state(|ui, app: &mut BitDanceApp| app.show(ui), app);
    crate::app::style(&harness.ctx);
    let mut h = TestApp {
        harness,
        _shared: Some(shared),
    };
    ready(&mut h);
    step_until(&mut h, "the adapters", |h| !h.state().adapters.is_empty());
    let s = h.state_mut();
    if let crate::app::GpuState::Ready(a) = &mut s.gpu {
        a.summary.name = "test adapter".into();
        a.summary.driver = "test driver".into();
    }
    for a in &mut s.adapters {
        a.name = "test adapter".into();
        a.driver = "test driver".into();
    }
    s.generate.seed = 1234;
    // A fixed throughput (10 GFLOP/s): the timed probe varies from run to run.
    if let Some(m) = &mut s.model {
        m.probe = Some((1e10, 1.0));
    }
    s.models.recent.clear();
    s.gallery.items.clear();
    s.finetune.runs.clear();
    s.notice = None;
    let options = egui_kittest::SnapshotOptions::new().threshold(0.6);
    for (tab, name) in [
        ("Create", "create"),
        ("Models", "models"),
        ("Gallery", "gallery"),
        ("Fine-tune", "finetune"),
        ("GPU", "gpu"),
    ] {
        h.get_by_label(tab).click();
        for _ in 0..3 {
            h.step();
        }
        h.snapshot_options(name, &options);
    }
    // A LoRA run on a 16-bit frozen base: the checkbox and the estimate it changes.
    h.get_by_label("Fine-tune").click();
    let o = &mut h.state_mut().finetune.options;
    o.trains = bitdance::train::Trains::Lora(Default::default());
    o.half_base = true;
    h.step();
    h.get_by_label("16-bit frozen base").scroll_to_me();
    for _ in 0..3 {
        h.step();
    }
    h.snapshot_options("finetune-lora", &options);
}

/// The report's figures for a big model (not a test: run by hand with
/// `BITDANCE_APP_MODEL=b4x.safetensors [BITDANCE_APP_HEAD_STEPS=1] cargo test --release -p
/// bitdance-desktop measure -- --ignored --nocapture`):
/// the model opened as the Models panel opens it, then two images of class 0 as Generate makes
/// them (the first warms up), each with its time, first preview and peak GPU memory.
#[test]
#[ignore]
fn measure_a_model_from_the_environment() {
    let path = std::path::PathBuf::from(std::env::var("BITDANCE_APP_MODEL").unwrap());
    let mut h = harness();
    ready(&mut h);
    let opened = std::time::Instant::now();
    h.state_mut().open_files(vec![path.clone()]);
    step_until_long(&mut h, "the model", |h| {
        h.state()
            .model
            .as_ref()
            .is_some_and(|m| m.path.as_deref() == Some(path.as_path()))
    });
    let held = h.state().model.as_ref().unwrap().held_bytes;
    eprintln!(
        "opened in {:.1} s, {:.0} MiB held",
        opened.elapsed().as_secs_f64(),
        held as f64 / (1u64 << 20) as f64
    );
    let g = &mut h.state_mut().generate;
    g.seed = 1;
    g.chosen = g.classes.search("", 1); // class 0
    if let Ok(steps) = std::env::var("BITDANCE_APP_HEAD_STEPS") {
        g.head_steps = steps.parse().unwrap();
    }
    eprintln!("{} head steps, cfg {}", g.head_steps, g.cfg);
    for run in 0..2 {
        h.get_by_label("Create").click();
        h.step();
        h.get_by_label("Generate").click();
        h.step();
        step_until_long(&mut h, "the image", |h| {
            h.state().generate.image.is_some() && h.state().generate.progress.is_none()
        });
        let t = h.state_mut().generate.image.take().unwrap().1;
        eprintln!("image {run}: {t:?}");
    }
}

/// `step_until` with an hour's patience (big models on lavapipe).
fn step_until_long(
    h: &mut Harness<'_, BitDanceApp>,
    what: &str,
    done: impl Fn(&Harness<'_, BitDanceApp>) -> bool,
) {
    let start = Instant::now();
    while !done(h) {
        assert!(
            start.elapsed() < Duration::from_secs(3600),
            "{what} took over an hour"
        );
        std::thread::sleep(Duration::from_millis(100));
        h.step();
    }
}

#[test]
fn a_png_dropped_on_the_window_restores_its_recipe_and_reproduces() {
    let mut h = generated_with_seed(4321);
    // The kept PNG, copied elsewhere, dropped on the window as a file manager would.
    let kept = h.state().gallery.items[0].path.clone();
    let dropped = home().join("dropped.png");
    std::fs::copy(&kept, &dropped).unwrap();
    h.state_mut().generate.seed = 1;
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(FromFileManager(dropped)));
    h.step();
    h.step();
    assert!(h.query_by_label_contains("Restored the recipe").is_some());
    assert_eq!(h.state().generate.seed, 4321, "the recipe's seed");
    h.get_by_label("Reproduce").click();
    h.step();
    assert_reproduced(&mut h);
}

/// A file dropped on the window, as the windowing layer hands it to egui.
#[derive(Debug)]
struct FromFileManager(std::path::PathBuf);

impl egui::DroppedFile for FromFileManager {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
