//! Fine-tuning on the worker thread: the core's `FinetuneRun` (the trainer `bitdance finetune`
//! runs) over a run folder written as the CLI writes it, a step at a time, with a pause that
//! writes the checkpoint first, so a run continues exactly, also after the app restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use bitdance::io::WeightFile;
use bitdance::model::{default_model_sha256, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL};
use bitdance::studio::sha256_hex;
use bitdance::train::{
    log_entry, resumed_plan, sample_settings, start_finetune, ClassPlan, ClassPolicy, FinetuneLoad,
    FinetuneRun, StepStats, Trainer,
};
use bitdance::Gpu;
use bitdance_files::run_dir::RunDir;

use crate::runs::{save_plan, RunPlan};
use crate::worker::Event;

/// Head steps and guidance of the sample grids (as `bitdance finetune` draws them).
const SAMPLE_HEAD_STEPS: usize = 25;
const SAMPLE_CFG: f32 = 3.0;

/// A run the worker is asked to take: a new one in an empty folder, or the one a folder holds.
#[derive(Clone, Debug)]
pub struct FinetuneRequest {
    /// The run's folder.
    pub dir: RunDir,
    /// How it is (or was) started.
    pub plan: RunPlan,
    /// Continue from the folder's checkpoint instead of starting.
    pub resume: bool,
}

/// A run that has begun training (after its images were encoded).
#[derive(Clone, Debug)]
pub struct RunStarted {
    /// Step it starts from (0, or the checkpoint's).
    pub step: u64,
    /// Which class each folder trains, a line each ("my_dog -> class 10 (new: my_dog)").
    pub classes: Vec<String>,
    /// The warning when the run may make the model forget its classes.
    pub note: Option<String>,
    /// Images in the dataset.
    pub images: usize,
    /// (step, loss) the log already holds (a resumed run's earlier steps).
    pub losses: Vec<(u64, f32)>,
}

/// What a run reports.
pub enum TrainEvent {
    /// Images encoded by the tokenizer: done of total (each image and its mirror).
    Encoding(usize, usize),
    /// Training begins.
    Started(Box<RunStarted>),
    /// A step was taken; the mean rate of this session's steps per second.
    Step(StepStats, f64),
    /// A sample grid (RGB bytes, width, height) after step `.3`.
    Sample(Vec<u8>, usize, usize, u64),
    /// Paused after step `.0`, its checkpoint written.
    Paused(u64),
    /// Every step taken (the model file is written).
    Done,
    /// The run failed (the reason); its last checkpoint stays.
    Failed(String),
}

/// What the UI (and the tests) can do to a run from outside.
pub struct Controls {
    /// Pause before the next step (its checkpoint is written first).
    pub pause: std::sync::Arc<AtomicBool>,
    /// Tests: destroy the device right after this step (0: never; taken once).
    #[cfg(test)]
    pub lose_at: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Takes the steps of `request`'s run until it ends or `controls.pause` is set; errors name what failed
/// (a lost device comes back as the core's `Error::DeviceLost`, for the worker to recover).
pub fn finetune(
    gpu: &Gpu,
    request: &FinetuneRequest,
    controls: &Controls,
    send: &dyn Fn(Event),
) -> anyhow::Result<()> {
    let pause = &controls.pause;
    let FinetuneRequest { dir, plan, resume } = request;
    let report = |e: TrainEvent| send(Event::Train(e));
    let folders = plan.data.folders()?;
    let (classes, trainer) = if *resume {
        let trainer = resume_trainer(gpu, dir, plan)?;
        (
            resumed_plan(&trainer, &folders, ClassPolicy::ByName)?,
            trainer,
        )
    } else {
        if let Some(found) = dir.existing_run() {
            anyhow::bail!("{} already holds a run", found.display());
        }
        start_trainer(gpu, plan, &folders, send)?
    };
    let mut trainer = trainer;
    plan.options.apply(&mut trainer);
    let images = plan.data.load(trainer.config.resolution)?;
    if !*resume {
        // Written once the model and the images are known to load: a folder is a run.
        save_plan(dir, plan)?;
    }
    let mut run = pollster::block_on(FinetuneRun::encode(
        trainer,
        &images,
        classes,
        plan.options.data(),
        *resume,
        &mut |done, total| report(TrainEvent::Encoding(done, total)),
    ))?;
    let start_step = run.step_count();
    let mut log = dir.open_log(start_step)?;
    report(TrainEvent::Started(Box::new(RunStarted {
        step: start_step,
        classes: run.plan.describe(),
        note: run.forgetting_note(),
        images: images.len(),
        losses: dir.losses(),
    })));
    drop(images);
    let grid_settings = sample_settings(SAMPLE_HEAD_STEPS, SAMPLE_CFG);
    let timer = Instant::now();
    while !run.is_done() {
        if pause.load(Ordering::Relaxed) {
            dir.save(&run.trainer)?;
            report(TrainEvent::Paused(run.step_count()));
            return Ok(());
        }
        let stats = pollster::block_on(run.step())?;
        let rate = (stats.step - start_step) as f64 / timer.elapsed().as_secs_f64().max(1e-9);
        log.append(&log_entry(&stats, rate, plan.options.batch))?;
        let step = stats.step;
        report(TrainEvent::Step(stats, rate));
        #[cfg(test)]
        if controls.lose_at.load(Ordering::Relaxed) == step {
            controls.lose_at.store(0, Ordering::Relaxed);
            gpu.device().destroy();
        }
        let done = run.is_done();
        if done || step % plan.checkpoint_every.max(1) == 0 {
            dir.save(&run.trainer)?;
        }
        if done || (plan.sample_every > 0 && step % plan.sample_every == 0) {
            let grid = pollster::block_on(run.samples(&grid_settings))?;
            dir.write_sample(step, &grid)?;
            let (w, h) = (grid.width() as usize, grid.height() as usize);
            report(TrainEvent::Sample(grid.into_raw(), w, h, step));
        }
    }
    report(TrainEvent::Done);
    Ok(())
}

/// A new run's class plan and trainer from the plan's starting model (the embedded default when
/// it names none): folders named like its classes train them, others become new classes.
fn start_trainer(
    gpu: &Gpu,
    plan: &RunPlan,
    folders: &[String],
    send: &dyn Fn(Event),
) -> anyhow::Result<(ClassPlan, Trainer)> {
    let settings = plan.options.settings();
    let policy = ClassPolicy::ByName;
    let Some(path) = &plan.base else {
        let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES)?;
        let sha = default_model_sha256();
        return Ok(start_finetune(gpu, &file, sha, folders, policy, settings)?);
    };
    let bytes = crate::worker::safetensors_of(path, send).map_err(anyhow::Error::msg)?;
    let file = WeightFile::parse_named(&path.display().to_string(), &bytes)?;
    let vae_bytes = match &plan.base_vae {
        Some(p) => Some((
            p,
            crate::worker::safetensors_of(p, send).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let vae = vae_bytes
        .as_ref()
        .map(|(p, b)| WeightFile::parse_named(&p.display().to_string(), b))
        .transpose()?;
    let sha = sha256_hex(&bytes);
    let load = FinetuneLoad::new(gpu, &file, vae.as_ref(), &sha, folders, policy, settings)?;
    Ok(load.load_in_memory()?)
}

/// The trainer of the checkpoint in `dir`, after checking it was written by this plan's settings.
fn resume_trainer(gpu: &Gpu, dir: &RunDir, plan: &RunPlan) -> anyhow::Result<Trainer> {
    let bytes = dir
        .read_checkpoint()
        .context("continuing a run needs its checkpoint")?;
    let label = dir.checkpoint_path().display().to_string();
    let file = WeightFile::parse_named(&label, &bytes)?;
    let stored = Trainer::stored_settings(&file)?;
    anyhow::ensure!(
        stored == plan.options.settings(),
        "{label}: the checkpoint was written with other settings than its run.json names"
    );
    Ok(Trainer::resume(gpu, &file, None)?)
}

/// Whether `e` is the GPU device being lost (the worker reopens it and continues the run).
pub fn device_lost(e: &anyhow::Error) -> Option<String> {
    match e.downcast_ref::<bitdance::Error>() {
        Some(bitdance::Error::DeviceLost(reason)) => Some(reason.clone()),
        _ => None,
    }
}
