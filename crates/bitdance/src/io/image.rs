//! Training images from bytes: PNG or JPEG decoded under stated limits, converted to RGB8, then
//! resized and center-cropped as the official ADM-style `center_crop_arr` does.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// Widest and tallest image decoded, in pixels: a larger one is refused before decoding.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Most bytes one image may hold at once while it is decoded, converted to RGB8 and resized
/// (512 MiB): the decoder is held to it, and an image whose pixels or resize would need more is
/// refused before anything that large is allocated.
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// Decodes the PNG or JPEG `bytes` (`label`, the file name, starts every error), converts them
/// to RGB8 and resizes and center-crops the image to `resolution` x `resolution` (`center_crop`).
/// An image wider or taller than `MAX_IMAGE_SIDE`, or one that would hold more than
/// `MAX_IMAGE_BYTES` while decoded or resized, is refused with an error naming the limit.
pub fn decode_training_image(label: &str, bytes: &[u8], resolution: usize) -> Result<RgbImage> {
    let bad = |what: String| Error::Invalid(format!("{label}: {what}"));
    if resolution == 0 || resolution > MAX_IMAGE_SIDE as usize {
        return Err(bad(format!(
            "resolution {resolution} is outside 1..={MAX_IMAGE_SIDE} (MAX_IMAGE_SIDE)"
        )));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(bad("not a PNG or JPEG image (unrecognised content)".into()));
    }
    // Sides are checked below, with a message naming them; the allocation cap holds from here.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| image_error(label, e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(format!("the image is {w}x{h} pixels: it has none")));
    }
    if w.max(h) > MAX_IMAGE_SIDE {
        return Err(bad(format!(
            "the image is {w}x{h} pixels, over the limit of {MAX_IMAGE_SIDE} pixels a side \
             (MAX_IMAGE_SIDE)"
        )));
    }
    let decoded = decoder.total_bytes();
    let peak = peak_bytes(decoded, w, h, resolution as u32);
    if peak > MAX_IMAGE_BYTES {
        return Err(bad(format!(
            "the {w}x{h} image ({decoded} bytes decoded) would hold {peak} bytes while converted \
             to RGB and resized for resolution {resolution}, over the limit of {} MiB \
             (MAX_IMAGE_BYTES)",
            MAX_IMAGE_BYTES >> 20
        )));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(label, e))?;
    Ok(center_crop(img.into_rgb8(), resolution))
}

/// The error of the image crate, naming the file and, for its memory limit, `MAX_IMAGE_BYTES`.
fn image_error(label: &str, e: ImageError) -> Error {
    match e {
        ImageError::Limits(e) => Error::Invalid(format!(
            "{label}: the image exceeds the decoding limit of {} MiB (MAX_IMAGE_BYTES): {e}",
            MAX_IMAGE_BYTES >> 20
        )),
        e => Error::Invalid(format!("{label}: cannot decode the image: {e}")),
    }
}

/// The most bytes decoding (`decoded` bytes of pixels), RGB8 conversion and `center_crop` to
/// `r` hold at once for a `w` x `h` image, counted generously: the decoded pixels with their RGB8
/// copy, then the RGB8 image, its first halving, the resize's f32 RGBA intermediate, the
/// resized image and the crop. The sizes follow `center_crop` step by step.
fn peak_bytes(decoded: u64, w: u32, h: u32, r: u32) -> u64 {
    let rgb = |w: u64, h: u64| w.saturating_mul(h).saturating_mul(3);
    let (mut hw, mut hh) = (w, h);
    while hw.min(hh) >= r.saturating_mul(2) {
        (hw, hh) = (hw / 2, hh / 2);
    }
    let scale = r as f64 / hw.min(hh) as f64;
    let (nw, nh) = (
        ((hw as f64 * scale).round() as u32).max(r),
        ((hh as f64 * scale).round() as u32).max(r),
    );
    let (w, h, hw, nw, nh, r) = (
        w as u64, h as u64, hw as u64, nw as u64, nh as u64, r as u64,
    );
    let convert = decoded.saturating_add(rgb(w, h));
    let crop = [
        rgb(w, h),
        rgb(w / 2, h / 2),
        hw.saturating_mul(nh).saturating_mul(16),
        rgb(nw, nh),
        rgb(r, r),
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    convert.max(crop)
}

/// Resizes and center-crops `img` to `r` x `r` as the official data pipeline does.
pub fn center_crop(img: RgbImage, r: usize) -> RgbImage {
    let r32 = r as u32;
    let mut img = img;
    while img.width().min(img.height()) >= 2 * r32 {
        // Box halving: the mean of each 2x2 block (PIL's BOX filter at an exact factor of 2).
        let (w, h) = (img.width() / 2, img.height() / 2);
        let src = &img;
        img = RgbImage::from_fn(w, h, |x, y| {
            let mut acc = [0u32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = src.get_pixel(2 * x + dx, 2 * y + dy).0;
                for c in 0..3 {
                    acc[c] += p[c] as u32;
                }
            }
            image::Rgb(acc.map(|v| ((v + 2) / 4) as u8))
        });
    }
    let scale = r as f64 / img.width().min(img.height()) as f64;
    let (w, h) = (
        ((img.width() as f64 * scale).round() as u32).max(r32),
        ((img.height() as f64 * scale).round() as u32).max(r32),
    );
    if (w, h) != img.dimensions() {
        img = image::imageops::resize(&img, w, h, FilterType::CatmullRom);
    }
    let (x0, y0) = ((w - r32) / 2, (h - r32) / 2);
    image::imageops::crop_imm(&img, x0, y0, r32, r32).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn large_images_are_halved_then_resized() {
        let img = RgbImage::from_fn(40, 20, |x, _| image::Rgb([(x * 6) as u8, 0, 0]));
        let out = center_crop(img, 8);
        assert_eq!(out.dimensions(), (8, 8));
        // Left to right the red ramp still rises.
        assert!(out.get_pixel(0, 4).0[0] < out.get_pixel(7, 4).0[0]);
    }

    #[test]
    fn png_bytes_decode_to_the_same_crop() {
        let img = RgbImage::from_fn(12, 6, |x, y| {
            image::Rgb([(x * 20) as u8, (y * 40) as u8, 7])
        });
        let out = decode_training_image("a.png", &png(&img), 4).unwrap();
        assert_eq!(out, center_crop(img, 4));
    }

    #[test]
    fn bad_bytes_and_limits_are_named() {
        let e = decode_training_image("b.png", b"\x89PNG broken", 4)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("b.png: "), "{e}");
        let e = decode_training_image("c.txt", b"hello", 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.txt") && e.contains("not a PNG or JPEG"),
            "{e}"
        );
        // Too wide: refused before decoding, naming the side limit.
        let wide = png(&RgbImage::new(MAX_IMAGE_SIDE + 1, 1));
        let e = decode_training_image("wide.png", &wide, 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("wide.png") && e.contains("MAX_IMAGE_SIDE"),
            "{e}"
        );
        // A thin strip is cheap to decode but would be resized to 4M x 256: refused.
        let thin = png(&RgbImage::new(MAX_IMAGE_SIDE, 1));
        let e = decode_training_image("thin.png", &thin, 256)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("thin.png") && e.contains("MAX_IMAGE_BYTES"),
            "{e}"
        );
        assert_eq!(
            decode_training_image("thin.png", &thin, 1)
                .unwrap()
                .dimensions(),
            (1, 1)
        );
        let e = decode_training_image("r.png", &thin, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("resolution 0"), "{e}");
    }
}
