//! Reading byte ranges of a Blob (a picked file, or one from the Origin Private File System):
//! the only way model bytes enter the wasm heap, a range at a time.

use wasm_bindgen::JsError;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use crate::js;

/// Bytes `start..end` of `blob`.
pub async fn read_range(blob: &Blob, start: u64, end: u64) -> Result<Vec<u8>, JsError> {
    let part = blob
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|e| js(format!("slicing a file: {e:?}")))?;
    let buffer = JsFuture::from(part.array_buffer())
        .await
        .map_err(|e| js(format!("reading a file: {e:?}")))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The size of `blob` in bytes.
pub fn size(blob: &Blob) -> u64 {
    blob.size() as u64
}
