//! Bad input gets a clear error naming the op, the shapes or the limit; never a panic.

use bitdance::{ops, Error, Gpu, GpuOptions, Tensor};
use bitdance_tests::gpu;

#[test]
fn shape_mismatch_names_op_and_shapes() {
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[3, 4]).unwrap();
    let b = Tensor::zeros(&gpu, &[4, 3]).unwrap();
    let err = ops::add(&a, &b).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "axpby", .. }), "{msg}");
    assert!(msg.contains("[3, 4]") && msg.contains("[4, 3]"), "{msg}");
    let err = ops::swiglu(&Tensor::zeros(&gpu, &[2, 5]).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("swiglu") && err.to_string().contains("[2, 5]"),
        "{err}"
    );
}

#[test]
fn tensor_over_the_binding_limit_names_the_limit() {
    let gpu = gpu();
    let limit = gpu.limits().max_storage_buffer_binding_size as usize;
    let err = Tensor::empty(&gpu, &[limit / 4 + 1], bitdance::DType::F32).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit_name: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(&limit.to_string()), "{msg}");
}

#[test]
fn upload_of_wrong_length_is_refused() {
    let err = Tensor::from_f32(&gpu(), &[2, 3], &[1.0; 5]).unwrap_err();
    assert!(
        err.to_string().contains("5 values given for shape [2, 3]"),
        "{err}"
    );
}

#[test]
fn unknown_backend_and_adapter_are_named() {
    let options = GpuOptions {
        backend: Some("cuda".into()),
        ..Default::default()
    };
    let err = bitdance::gpu::block_on(Gpu::new(&options))
        .err()
        .expect("cuda is no wgpu backend");
    assert!(err.to_string().contains("unknown backend 'cuda'"), "{err}");
    let options = GpuOptions {
        adapter: Some("no-such-gpu-xyz".into()),
        ..Default::default()
    };
    let err = bitdance::gpu::block_on(Gpu::new(&options))
        .err()
        .expect("no adapter has that name");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-gpu-xyz") && msg.contains("adapters seen"),
        "{msg}"
    );
}

#[test]
fn gpu_errors_surface_as_results_not_aborts() {
    // Binding a tensor to a kernel with the wrong binding count is refused before wgpu sees it.
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[4]).unwrap();
    let err = ops::axpby_inplace(1.0, &a, 1.0, &a).unwrap_err();
    assert!(err.to_string().contains("share storage"), "{err}");
    gpu.flush().unwrap();
}

#[test]
fn rope_table_names_the_mismatch() {
    let g = gpu();
    let positions = Tensor::from_f32(&g, &[5, 2], &[0.0; 10]).unwrap();
    let err = ops::RopeTable::new(&positions, 2, 6)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("rope_table") && err.contains("multiple of 4"),
        "{err}"
    );
    let table = ops::RopeTable::new(&positions, 2, 8).unwrap();
    let x = Tensor::zeros(&g, &[1, 4, 2, 8]).unwrap();
    let err = table.apply(&x).err().unwrap().to_string();
    assert!(
        err.contains("[1, 4, 2, 8]") && err.contains("[B, 5, 2, 8]"),
        "{err}"
    );
    let err = ops::rope_2d(&x, &positions).err().unwrap().to_string();
    assert!(err.contains("positions [T, 2]"), "{err}");
}
