//! The runtime's promises: poisoned outputs, pooled buffers, batched submits, ordered uploads.

use bitdance::{ops, DType, Tensor};
use bitdance_tests::gpu;

#[test]
fn poisoned_outputs_read_as_nan_until_written() {
    let gpu = gpu();
    let _guard = gpu.poison_outputs_guard();
    let t = Tensor::empty(&gpu, &[5, 3], DType::F32).unwrap();
    assert!(t.read_f32().unwrap().iter().all(|v| v.is_nan()));
}

#[test]
fn freed_buffers_are_reused_and_counted() {
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    let before = gpu.stats();
    let a = Tensor::zeros(&gpu, &[1000]).unwrap();
    let live = gpu.stats().live_bytes;
    assert!(live >= before.live_bytes + 4000);
    drop(a);
    assert_eq!(gpu.stats().live_bytes, before.live_bytes);
    let _b = Tensor::zeros(&gpu, &[990]).unwrap(); // same size class
    let after = gpu.stats();
    assert_eq!(after.reuses, before.reuses + 1, "{after:?}");
    assert!(after.peak_bytes >= live);
}

#[test]
fn trimming_frees_the_pool_and_weights_are_not_pooled() {
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    const MIB: usize = 1 << 20;
    let phase: Vec<Tensor> = (0..4)
        .map(|_| Tensor::empty(&gpu, &[8 * MIB], DType::F32).unwrap())
        .collect();
    drop(phase);
    let held = gpu.stats();
    assert!(held.pooled_bytes >= 128 * MIB as u64, "{held:?}");
    assert!(held.peak_bytes >= held.live_bytes + held.pooled_bytes);
    // The same size again is served from the pool, without allocating.
    drop(Tensor::empty(&gpu, &[8 * MIB], DType::F32).unwrap());
    assert_eq!(gpu.stats().allocations, held.allocations);
    // A phase frees what it pooled, level by level and at its end, and nothing from before.
    let pooled_before = gpu.stats().pooled_bytes;
    let phase = gpu.pool_phase();
    drop(Tensor::empty(&gpu, &[3 * MIB], DType::F32).unwrap());
    assert!(gpu.stats().pooled_bytes > pooled_before);
    gpu.trim_phase();
    assert_eq!(gpu.stats().pooled_bytes, pooled_before);
    drop(Tensor::empty(&gpu, &[5 * MIB], DType::F32).unwrap());
    // A buffer pooled before the phase and used in it counts as the phase's.
    drop(Tensor::empty(&gpu, &[8 * MIB], DType::F32).unwrap());
    drop(phase);
    assert_eq!(gpu.stats().pooled_bytes, pooled_before - 32 * MIB as u64);
    gpu.trim_pool();
    assert_eq!(gpu.stats().pooled_bytes, 0);
    // Weights are sized to their data and freed, not pooled, when dropped.
    let data = vec![1.0; 1_001_000];
    let upload = Tensor::weight_from_f32(&gpu, &[1000, 1001], &data, DType::F32).unwrap();
    let live = gpu.stats().live_bytes;
    drop(upload);
    let end = gpu.stats();
    assert_eq!(live - end.live_bytes, (4_004_000u64).div_ceil(256) * 256);
    assert_eq!(end.pooled_bytes, 0, "{end:?}");
    // Per-step uploads reuse pooled buffers.
    drop(Tensor::from_f32(&gpu, &[1000, 1001], &data).unwrap());
    let before = gpu.stats();
    drop(Tensor::from_f32(&gpu, &[1000, 1001], &data).unwrap());
    assert_eq!(gpu.stats().reuses, before.reuses + 1);
}

#[test]
fn many_ops_cost_one_submit_at_the_readback() {
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    let mut x = Tensor::from_f32(&gpu, &[257], &vec![0.5; 257]).unwrap();
    let start = gpu.stats();
    for _ in 0..50 {
        x = ops::axpby(1.0, &x, 0.0, &ops::silu(&x).unwrap()).unwrap();
    }
    let values = x.read_f32().unwrap();
    let end = gpu.stats();
    assert_eq!(end.submits - start.submits, 1, "{end:?}");
    assert_eq!(end.dispatches - start.dispatches, 100);
    assert!(values.iter().all(|&v| v == 0.5));
}

#[test]
fn uploads_into_reused_buffers_stay_in_order() {
    // A buffer read by a recorded op, freed and re-filled by an upload before the submit:
    // the upload must not overtake the read.
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    let a = Tensor::from_f32(&gpu, &[300], &vec![1.0; 300]).unwrap();
    let doubled = ops::scale(&a, 2.0).unwrap();
    drop(a);
    let b = Tensor::from_f32(&gpu, &[300], &vec![7.0; 300]).unwrap();
    assert!(doubled.read_f32().unwrap().iter().all(|&v| v == 2.0));
    assert!(b.read_f32().unwrap().iter().all(|&v| v == 7.0));
}

#[test]
fn ema_starts_as_a_copy_then_follows_with_its_decay() {
    use bitdance::optim::Ema;
    let gpu = gpu();
    let w = Tensor::from_f32(&gpu, &[3], &[1.0, 2.0, -4.0]).unwrap();
    let mut ema = Ema::new(0.9);
    ema.update([("w", &w)]).unwrap();
    assert_eq!(ema.shadows["w"].read_f32().unwrap(), vec![1.0, 2.0, -4.0]);
    assert!(
        !ema.shadows["w"].same_storage(&w),
        "the shadow is a copy, not the live weight"
    );
    let w2 = Tensor::from_f32(&gpu, &[3], &[11.0, 2.0, 6.0]).unwrap();
    ema.update([("w", &w2)]).unwrap();
    let got = ema.shadows["w"].read_f32().unwrap();
    for (g, want) in got.iter().zip([2.0f32, 2.0, -3.0]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn adamw_starts_a_missing_ema_shadow_as_a_copy_then_updates_it_in_the_same_pass() {
    use bitdance::optim::{AdamW, AdamWConfig, Ema, ParamGrad};
    let gpu = gpu();
    let w = Tensor::from_f32(&gpu, &[5], &[1.0, -2.0, 0.5, 3.0, -0.25]).unwrap();
    let g = Tensor::from_f32(&gpu, &[5], &[0.3, 0.1, -0.7, 0.2, 0.05]).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut ema = Ema::new(0.75);
    let pg = [ParamGrad {
        name: "w",
        value: &w,
        grad: &g,
        decay: true,
    }];
    opt.step(&pg, 0.1, Some(&mut ema)).unwrap();
    let w1 = w.read_f32().unwrap();
    assert_eq!(
        ema.shadows["w"].read_f32().unwrap(),
        w1,
        "a copy of the updated weight"
    );
    assert!(!ema.shadows["w"].same_storage(&w));
    opt.step(&pg, 0.1, Some(&mut ema)).unwrap();
    let w2 = w.read_f32().unwrap();
    assert_ne!(w1, w2);
    let shadow = ema.shadows["w"].read_f32().unwrap();
    for ((s, a), b) in shadow.iter().zip(&w1).zip(&w2) {
        assert!((s - (0.75 * a + 0.25 * b)).abs() < 1e-6, "{shadow:?}");
    }
    // A shadow that is the live weight itself is refused, naming both.
    ema.shadows.insert("w".into(), w.clone());
    let err = opt.step(&pg, 0.1, Some(&mut ema)).unwrap_err().to_string();
    assert!(err.contains("param and ema share storage"), "{err}");
}

#[test]
fn profiling_times_each_kernel_variant_then_stops() {
    // Its own device: profiling is per device and other tests share `gpu()`.
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    let a = Tensor::from_f32(&gpu, &[3, 4], &[0.5; 12]).unwrap();
    let w = Tensor::from_f32(&gpu, &[5, 4], &[0.25; 20]).unwrap();
    gpu.start_profiling();
    let before = gpu.stats().dispatches;
    let y = ops::matmul(&a, &w, None, false, true).unwrap();
    let _ = ops::matmul(&y, &y, None, true, false).unwrap();
    let z = ops::silu(&y).unwrap();
    let dispatches = gpu.stats().dispatches - before;
    let profile = gpu.stop_profiling();
    let calls: u64 = profile.iter().map(|k| k.calls).sum();
    assert!(dispatches >= 3);
    assert_eq!(calls, dispatches, "{profile:?}");
    assert!(
        // Labelled with its defines: 15 elements run the scalar form.
        profile
            .iter()
            .any(|k| k.kernel == "silu[VEC1]" && k.calls == 1),
        "{profile:?}"
    );
    assert!(
        profile.iter().any(|k| k.kernel.starts_with("mm_")),
        "{profile:?}"
    );
    assert!(profile.windows(2).all(|p| p[0].seconds >= p[1].seconds));
    assert!(profile.iter().all(|k| k.seconds > 0.0));
    // Off again: nothing more is collected.
    let _ = ops::silu(&z).unwrap();
    assert!(gpu.stop_profiling().is_empty());
    assert_eq!(z.read_f32().unwrap().len(), 15);
}

#[test]
fn each_handle_reads_16_bit_weights_in_its_own_form_on_one_device() {
    use bitdance::gpu::F16Form;
    // Its own device: profiling is per device and other tests share `gpu()`.
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    if !gpu.f16_forms().contains(&F16Form::Arrays) {
        eprintln!("skipped: {} has no SHADER_F16", gpu.adapter().name);
        return;
    }
    let own = gpu.f16_form();
    let arrays = gpu.with_f16_form(F16Form::Arrays).unwrap();
    let packed = gpu.with_f16_form(F16Form::Packed).unwrap();
    assert_eq!(
        gpu.f16_form(),
        own,
        "making handles changed the device's own form"
    );
    let values: Vec<f32> = (0..12 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
    let x: Vec<f32> = (0..3 * 8).map(|i| (i as f32 * 0.11).cos()).collect();
    gpu.start_profiling();
    // Interleaved, and on two threads at once: neither handle's form leaks into the other.
    let run = |g: &bitdance::Gpu| {
        let a = Tensor::from_f32(g, &[3, 8], &x).unwrap();
        let w = Tensor::from_f32_as_f16(g, &[12, 8], &values).unwrap();
        ops::matmul(&a, &w, None, false, true)
            .unwrap()
            .read_f32()
            .unwrap()
    };
    let (from_arrays, from_packed) = std::thread::scope(|s| {
        let a = s.spawn(|| (0..3).map(|_| run(&arrays)).collect::<Vec<_>>());
        let p = s.spawn(|| (0..3).map(|_| run(&packed)).collect::<Vec<_>>());
        (a.join().unwrap(), p.join().unwrap())
    });
    let profile = gpu.stop_profiling();
    let calls = |arrays_form: bool| -> u64 {
        profile
            .iter()
            .filter(|k| k.kernel.starts_with("mm_"))
            .filter(|k| k.kernel.contains("F16_ARRAYS1") == arrays_form)
            .map(|k| k.calls)
            .sum()
    };
    assert_eq!((calls(true), calls(false)), (3, 3), "{profile:?}");
    // Both forms read the same halves: the same products.
    assert!(from_arrays
        .iter()
        .chain(&from_packed)
        .all(|v| v == &from_arrays[0]));
}

#[test]
fn row_views_share_storage_when_aligned_and_copy_otherwise() {
    let gpu = gpu();
    let align = gpu.limits().min_storage_buffer_offset_alignment as usize / 4;
    // Rows of `align` floats: every row starts at a bindable offset.
    let rows = 5;
    let data: Vec<f32> = (0..rows * align).map(|i| i as f32).collect();
    let t = Tensor::from_f32(&gpu, &[rows, align], &data).unwrap();
    let view = t.rows(2, 2).unwrap();
    assert!(view.same_storage(&t));
    assert_eq!(view.shape(), &[2, align]);
    assert_eq!(view.read_f32().unwrap(), data[2 * align..4 * align]);
    // Kernels read and write through the view; the parent sees the writes.
    let doubled = ops::add(&view, &view).unwrap();
    assert_eq!(doubled.read_f32().unwrap()[0], 2.0 * data[2 * align]);
    view.write_f32(&vec![-1.0; 2 * align]).unwrap();
    let all = t.read_f32().unwrap();
    assert!(all[2 * align..4 * align].iter().all(|&v| v == -1.0));
    assert_eq!(all[..2 * align], data[..2 * align]);
    assert_eq!(all[4 * align..], data[4 * align..]);
    // A row of 3 floats cannot start at a bindable offset: the rows come as a copy.
    let odd = Tensor::from_f32(&gpu, &[4, 3], &data[..12]).unwrap();
    let copy = odd.rows(1, 2).unwrap();
    assert!(!copy.same_storage(&odd));
    assert_eq!(copy.read_f32().unwrap(), data[3..9]);
    assert!(odd.rows(3, 2).is_err(), "rows past the end are refused");
}

#[test]
fn half_weights_round_trip_and_are_refused_where_the_kernels_cannot_read_them() {
    let gpu = gpu();
    let values = [1.0f32, -2.5, 1.0 + 2f32.powi(-11), 65504.0, 3.0e-6];
    let t = Tensor::from_f32_as_f16(&gpu, &[5], &values).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(t.byte_len(), 12, "five halves fill three 32-bit words");
    let back = t.read_f32().unwrap();
    let want: Vec<f32> = values
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(back, want);
    // K = 37 is not a whole number of vec4s: the 16-bit kernels cannot read it.
    let a = Tensor::zeros(&gpu, &[3, 37]).unwrap();
    let w = Tensor::from_f32_as_f16(&gpu, &[29, 37], &[0.5; 29 * 37]).unwrap();
    let e = ops::matmul(&a, &w, None, false, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 4"), "{e}");
    // Weights read along N (no trans_b: the input gradient through a frozen 16-bit weight)
    // need K and N multiples of 4; other ops refuse f16 by dtype.
    let a = Tensor::from_f32(&gpu, &[3, 36], &[1.0; 3 * 36]).unwrap();
    let w = Tensor::from_f32_as_f16(&gpu, &[36, 8], &[0.5; 36 * 8]).unwrap();
    let product = ops::matmul(&a, &w, None, false, false).unwrap();
    assert_eq!(product.read_f32().unwrap(), vec![18.0; 3 * 8]);
    let narrow = Tensor::from_f32_as_f16(&gpu, &[36, 6], &[0.5; 36 * 6]).unwrap();
    let e = ops::matmul(&a, &narrow, None, false, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 4"), "{e}");
    assert!(ops::add(&w, &w).is_err());
}

#[test]
fn empty_tensors_fill_and_add_without_a_dispatch() {
    let gpu = gpu();
    let e = Tensor::zeros(&gpu, &[2, 0, 8]).unwrap();
    assert_eq!(
        ops::add(&e, &e).unwrap().read_f32().unwrap(),
        Vec::<f32>::new()
    );
}

#[test]
fn webgpu_limits_are_what_a_browser_grants_and_bound_every_tensor() {
    let options = bitdance::gpu::GpuOptions {
        webgpu_limits: true,
        ..bitdance::gpu::GpuOptions::from_env().unwrap()
    };
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::new(&options)).unwrap();
    let limits = gpu.limits();
    assert_eq!(limits.max_storage_buffer_binding_size, 128 << 20);
    assert_eq!(limits.max_buffer_size, 256 << 20);
    // One element past a 128 MiB binding is refused by name, before any allocation.
    let err = Tensor::empty(&gpu, &[(32 << 20) + 1], DType::F32).unwrap_err();
    assert!(
        err.to_string().contains("max_storage_buffer_binding_size"),
        "{err}"
    );
    let stats = gpu.stats();
    assert_eq!(stats.largest_buffer_bytes, 0, "{stats:?}");
    // Dispatches record the largest binding they used.
    let x = Tensor::from_f32(&gpu, &[1000], &vec![1.0; 1000]).unwrap();
    let _y = ops::silu(&x).unwrap();
    assert_eq!(gpu.stats().largest_binding_bytes, 4000);
}

/// A lost device (here destroyed on purpose, as a driver reset would) turns every later call
/// into `Error::DeviceLost`, which the apps catch to reopen the GPU and reload the model.
#[test]
fn a_lost_device_is_reported_as_such() {
    let gpu = bitdance::gpu::block_on(bitdance::Gpu::from_env()).unwrap();
    let x = Tensor::from_f32(&gpu, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(gpu.lost().is_none());
    gpu.device().destroy();
    let e = x.read_f32().unwrap_err();
    assert!(gpu.lost().is_some(), "the device-lost callback fired: {e}");
    assert!(matches!(e, bitdance::Error::DeviceLost(_)), "{e}");
    assert!(e.to_string().contains("was lost"), "{e}");
}
