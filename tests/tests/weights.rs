//! Weight upload: whole tensors, row chunks within a forced byte budget, and the limits.

use bitdance::io::{load_rows_chunked, load_tensor, save_safetensors, WeightFile};
use bitdance::Error;
use bitdance_tests::gpu;

fn table(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| i as f32 * 0.25 - 3.0).collect()
}

#[test]
fn load_tensor_uploads_f32_values_and_shape() {
    let gpu = gpu();
    let w = table(7, 5);
    let bytes = save_safetensors(&[("w", &[7, 5], &w)], None).unwrap();
    let file = WeightFile::parse(&bytes).unwrap();
    let t = load_tensor(&gpu, &file, "w").unwrap();
    assert_eq!(t.shape(), &[7, 5]);
    assert_eq!(t.read_f32().unwrap(), w);
    let msg = load_tensor(&gpu, &file, "missing").unwrap_err().to_string();
    assert!(msg.contains("'missing'"), "{msg}");
}

#[test]
fn load_tensor_converts_bf16() {
    let gpu = gpu();
    let header = r#"{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for bits in [0x3f80u16, 0xc040, 0x4000] {
        bytes.extend_from_slice(&bits.to_le_bytes());
    }
    let file = WeightFile::parse(&bytes).unwrap();
    let t = load_tensor(&gpu, &file, "b").unwrap();
    assert_eq!(t.read_f32().unwrap(), vec![1.0, -3.0, 2.0]);
}

#[test]
fn rows_chunked_split_at_the_byte_budget_and_rejoin() {
    let gpu = gpu();
    let (rows, cols) = (37, 11);
    let w = table(rows, cols);
    let bytes = save_safetensors(&[("cls", &[rows, cols], &w)], None).unwrap();
    let file = WeightFile::parse(&bytes).unwrap();
    // 5 rows of 44 bytes fit in 230 bytes (not 6): chunks of 5, the last one of 2.
    for (budget, per) in [(230u64, 5usize), (44, 1), (44 * 37, 37), (u64::MAX, 37)] {
        let chunks = load_rows_chunked(&gpu, &file, "cls", budget).unwrap();
        assert_eq!(chunks.len(), rows.div_ceil(per), "budget {budget}");
        let mut joined = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let want = per.min(rows - i * per);
            assert_eq!(c.shape(), &[want, cols], "budget {budget} chunk {i}");
            assert!(c.byte_len() <= budget);
            joined.extend(c.read_f32().unwrap());
        }
        assert_eq!(joined, w, "budget {budget}");
    }
}

#[test]
fn rows_chunked_refuse_rows_over_budget_and_non_matrices() {
    let gpu = gpu();
    let w = table(3, 4);
    let bytes = save_safetensors(&[("m", &[3, 4], &w), ("v", &[12], &w)], None).unwrap();
    let file = WeightFile::parse_named("t.safetensors", &bytes).unwrap();
    let msg = load_rows_chunked(&gpu, &file, "m", 15)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("'m'") && msg.contains("15"), "{msg}");
    let err = load_rows_chunked(&gpu, &file, "v", 1 << 20).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("[12]"), "{err}");
}

#[test]
fn tensors_over_the_binding_limit_need_chunks() {
    // load_tensor refuses a tensor just over the limit before converting it.
    let gpu = gpu();
    let limit = gpu.limits().max_storage_buffer_binding_size as usize;
    let cols = 1024;
    let rows = limit / (cols * 4) + 1;
    let header = format!(
        r#"{{"big":{{"dtype":"BF16","shape":[{rows},{cols}],"data_offsets":[0,{}]}}}}"#,
        rows * cols * 2
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + rows * cols * 2, 0);
    let file = WeightFile::parse(&bytes).unwrap();
    let err = load_tensor(&gpu, &file, "big").unwrap_err();
    assert!(matches!(err, Error::Limit { .. }), "{err}");
    assert!(err.to_string().contains("load_rows_chunked"), "{err}");
    // The chunked loader takes it: a chunk at the limit, then the one row left over.
    let last = bytes.len() - cols * 2;
    for (j, pair) in bytes[last..].chunks_exact_mut(2).enumerate() {
        pair.copy_from_slice(&bitdance_bf16((j % 97) as f32).to_le_bytes());
    }
    let file = WeightFile::parse(&bytes).unwrap();
    let chunks = load_rows_chunked(&gpu, &file, "big", u64::MAX).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].shape(), &[rows - 1, cols]);
    assert_eq!(chunks[1].shape(), &[1, cols]);
    let tail = chunks[1].read_f32().unwrap();
    assert!(tail.iter().enumerate().all(|(j, &v)| v == (j % 97) as f32));
}

/// bf16 bits of an f32 (exact for integers up to 256).
fn bitdance_bf16(v: f32) -> u16 {
    (v.to_bits() >> 16) as u16
}
