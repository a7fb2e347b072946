//! The host memory a fine-tuning run holds at its peak in each phase, as the web page drives it
//! (the model read by ranges, a step, the checkpoint and the model written a tensor at a
//! time): counted by a global allocator. Measures a real model from the environment (ignored
//! by default): `BITDANCE_MEASURE_MODEL=b1x.safetensors BITDANCE_MEASURE_DATA=DIR cargo test
//! -p bitdance-tests --test finetune_host_memory -- --ignored --nocapture`, where DIR holds
//! class folders of images.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bitdance::gpu::block_on;
use bitdance::io::{header_size, WeightFile};
use bitdance::train::{
    ClassPolicy, FinetuneLoad, FinetuneOptions, FinetuneRun, LoraSpec, TensorStream,
    TrainingImages, Trains,
};

/// The system allocator, counting the bytes held now and their peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The file's bytes, held throughout (the page reads them from a Blob instead).
static BASE: AtomicUsize = AtomicUsize::new(0);

/// The peak over `BASE` since the last call, in MiB, and a new count from what is held now.
fn phase_peak() -> f64 {
    let peak = PEAK.swap(HELD.load(Ordering::Relaxed), Ordering::Relaxed);
    peak.saturating_sub(BASE.load(Ordering::Relaxed)) as f64 / (1 << 20) as f64
}

/// Reads `stream` to its end as the page writes it, a piece at a time; returns its MiB.
fn drain(mut stream: TensorStream<'_>) -> usize {
    let mut written = stream.header().len();
    while let Some(piece) = block_on(stream.next_piece()).unwrap() {
        written += piece.len();
    }
    written >> 20
}

#[test]
#[ignore = "measures a model named by BITDANCE_MEASURE_MODEL (minutes for a B model)"]
fn measure_the_host_memory_of_a_finetune_phase_by_phase() {
    let path = std::env::var("BITDANCE_MEASURE_MODEL").expect("BITDANCE_MEASURE_MODEL");
    let data = std::env::var("BITDANCE_MEASURE_DATA").expect("BITDANCE_MEASURE_DATA");
    let gpu = bitdance_tests::gpu();
    let bytes = std::fs::read(&path).unwrap();
    let n = header_size(&path, &bytes[..8]).unwrap();
    let file = WeightFile::from_header(&path, &bytes[..n], bytes.len() as u64).unwrap();
    let card = bitdance::studio::ModelCard::of_file(&path, &file).unwrap();
    let mut folders: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    folders.sort();
    let mut images = TrainingImages::new(card.config.resolution);
    for folder in &folders {
        let class = folder.file_name().unwrap().to_string_lossy().to_string();
        let id = images.class_id(&class);
        for f in std::fs::read_dir(folder).unwrap() {
            let f = f.unwrap().path();
            images
                .push_encoded(&f.display().to_string(), &std::fs::read(&f).unwrap(), id)
                .unwrap();
        }
    }
    let o = FinetuneOptions {
        steps: 1,
        batch: 1,
        trains: Trains::Lora(LoraSpec::default()),
        half_base: true,
        ..FinetuneOptions::default()
    };
    println!(
        "file in memory (not counted below): {} MiB",
        bytes.len() >> 20
    );
    BASE.store(bytes.len(), Ordering::Relaxed);
    phase_peak();
    let mut load = FinetuneLoad::new(
        &gpu,
        &file,
        None,
        "measured",
        &images.classes,
        ClassPolicy::ByName,
        o.settings(),
    )
    .unwrap();
    let mut largest = (0, String::new());
    while let Some(read) = load.tensors.next_read().cloned() {
        let piece = bytes[read.range.start as usize..read.range.end as usize].to_vec();
        load.tensors.upload(&piece).unwrap();
        largest = largest.max((piece.len(), read.name));
    }
    println!(
        "reads (largest {} MiB, '{}'): peak {:.1} MiB, held after {:.1} MiB",
        largest.0 >> 20,
        largest.1,
        phase_peak(),
        HELD.load(Ordering::Relaxed).saturating_sub(bytes.len()) as f64 / (1 << 20) as f64
    );
    let (plan, mut trainer) = load.finish().unwrap();
    println!("trainer: peak {:.1} MiB", phase_peak());
    o.apply(&mut trainer);
    let mut run = block_on(FinetuneRun::encode(
        trainer,
        &images,
        plan,
        o.data(),
        false,
        &mut |_, _| {},
    ))
    .unwrap();
    println!("encode: peak {:.1} MiB", phase_peak());
    block_on(run.step()).unwrap();
    println!("step: peak {:.1} MiB", phase_peak());
    let written = drain(run.trainer.checkpoint_stream().unwrap());
    println!("checkpoint ({written} MiB): peak {:.1} MiB", phase_peak());
    let written = drain(run.trainer.model_stream(true, false).unwrap());
    println!("model ({written} MiB): peak {:.1} MiB", phase_peak());
}
