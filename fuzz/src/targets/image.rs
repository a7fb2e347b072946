//! Training images (PNG, JPEG): `decode_training_image` at a resolution of 8, 16, 32 or 256 (picked
//! by the input's length, so a saved input reproduces), checked to return the crop asked for.

use std::io::Cursor;

use bitdance::io::image::decode_training_image;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::{Outcome, Target};
use crate::mutate::{self, interesting_int};
use crate::rng::Rng;

/// The target.
pub const TARGET: Target = Target {
    name: "image",
    about: "decode_training_image (PNG/JPEG, limits, RGB8, center crop)",
    run,
    mutate: mutate_image,
    dict: &[
        b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"zTXt", b"iCCP", b"acTL", b"fcTL",
        b"\xff\xd8", b"\xff\xc0", b"\xff\xc2", b"\xff\xc4", b"\xff\xda", b"\xff\xdb", b"\xff\xd9",
        b"\xff\xdd",
    ],
    seeds,
};

/// Resolutions asked for, chosen by the input's length.
const RESOLUTIONS: [usize; 4] = [8, 16, 32, 256];

fn run(data: &[u8]) -> Vec<Outcome> {
    let r = RESOLUTIONS[data.len() % RESOLUTIONS.len()];
    vec![match decode_training_image("fuzz.img", data, r) {
        Ok(img) => {
            assert_eq!(img.dimensions(), (r as u32, r as u32), "crop size");
            Ok(format!("decoded {} at {r}", kind(data)))
        }
        Err(e) => Err(e.to_string()),
    }]
}

/// The format, colour type and size class of an image that decoded (for the pool's outcomes).
fn kind(data: &[u8]) -> String {
    let reader = ImageReader::new(Cursor::new(data)).with_guessed_format();
    let Some(decoder) = reader.ok().and_then(|r| r.into_decoder().ok()) else {
        return "?".into();
    };
    let (w, h) = decoder.dimensions();
    let class = |s: u32| ["one", "small", "large"][(s > 1) as usize + (s > 64) as usize];
    let color = format!("{:?}", decoder.color_type()).replace(char::is_numeric, "");
    format!("{color} {}x{}", class(w), class(h))
}

/// The PNG chunks of `data` as (offset, length) of each chunk's length field, while they fit.
pub(super) fn chunks(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while let Some(len) = data.get(at..at + 4) {
        let len = u32::from_be_bytes(len.try_into().unwrap_or_default()) as usize;
        if at + 12 + len > data.len() {
            break;
        }
        out.push((at, len));
        at += 12 + len;
    }
    out
}

/// Rewrites every chunk's CRC-32 (the decoder would refuse most PNG mutants on it).
pub(super) fn fix_crcs(data: &mut [u8]) {
    for (at, len) in chunks(data) {
        let crc = crc32fast::hash(&data[at + 4..at + 8 + len]);
        data[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
    }
}

/// PNG: a header field (sides, depth, colour type, interlace) or a chunk's data edited, a chunk
/// dropped or repeated, then the CRCs fixed. JPEG: the frame's sides rewritten.
fn mutate_image(rng: &mut Rng, data: &[u8], pool: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    if data.starts_with(b"\x89PNG") {
        let list = chunks(data);
        let (at, len) = *list.get(rng.below(list.len().max(1)))?;
        match rng.below(5) {
            0 if data.len() >= 29 => {
                // IHDR: width (16), height (20), depth (24), colour type (25), interlace (28).
                let field = *rng.pick(&[16usize, 20, 24, 25, 28]);
                if field < 24 {
                    let v = side(rng);
                    out[field..field + 4].copy_from_slice(&v.to_be_bytes());
                } else {
                    out[field] = *rng.pick(&[0u8, 1, 2, 3, 4, 6, 8, 16, 255]);
                }
            }
            1 => {
                let chunk = out[at..at + 12 + len].to_vec();
                out.splice(at..at, chunk);
            }
            2 if list.len() > 1 => {
                out.drain(at..at + 12 + len);
            }
            _ => {
                let mut body = out[at + 8..at + 8 + len].to_vec();
                mutate::mutate_once(rng, &mut body, pool, &[]);
                out.splice(at + 8..at + 8 + len, body.iter().copied());
                out[at..at + 4].copy_from_slice(&(body.len() as u32).to_be_bytes());
            }
        }
        fix_crcs(&mut out);
        return Some(out);
    }
    // JPEG: the start-of-frame marker's height (+5) and width (+7), big-endian.
    let sof = (0..data.len().saturating_sub(9))
        .find(|&i| data[i] == 0xff && matches!(data[i + 1], 0xc0..=0xc2))?;
    let field = sof + *rng.pick(&[5usize, 7]);
    let v = side(rng) as u16;
    out[field..field + 2].copy_from_slice(&v.to_be_bytes());
    Some(out)
}

/// An image side: mostly small (cheap to decode) or past the limits (refused before decoding),
/// sometimes any interesting value (sides in between cost up to seconds each in the dev profile).
fn side(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0..=5 => rng.below(65) as u32,
        6..=8 => *rng.pick(&[0, 16385, 32768, 65535, 1 << 24, 1 << 31, u32::MAX]),
        _ => interesting_int(rng) as u32,
    }
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode a seed image");
    out.into_inner()
}

/// The seeds; named `.bin`, as the repository ignores `*.png`.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let rgb = RgbImage::from_fn(12, 7, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 90]));
    let gray16 = image::ImageBuffer::from_fn(5, 9, |x, y| image::Luma([(x * 9000 + y) as u16]));
    let rgba = image::RgbaImage::from_fn(6, 6, |x, y| image::Rgba([x as u8 * 40, 0, y as u8, 128]));
    let luma = image::GrayImage::from_fn(16, 3, |x, _| image::Luma([x as u8 * 15]));
    let png = |img| encode(img, ImageFormat::Png);
    let jpeg = |img| encode(img, ImageFormat::Jpeg);
    let thin = png(DynamicImage::ImageLuma8(image::GrayImage::new(4096, 1)));
    // Nasty: a 1x1 PNG whose header claims 16384 x 16384 (the chunk CRCs fixed).
    let mut huge = png(DynamicImage::ImageRgb8(RgbImage::new(1, 1)));
    huge[16..20].copy_from_slice(&16384u32.to_be_bytes());
    huge[20..24].copy_from_slice(&16384u32.to_be_bytes());
    fix_crcs(&mut huge);
    vec![
        ("rgb-png.bin".into(), png(DynamicImage::ImageRgb8(rgb.clone()))),
        ("gray16-png.bin".into(), png(DynamicImage::ImageLuma16(gray16))),
        ("rgba-png.bin".into(), png(DynamicImage::ImageRgba8(rgba))),
        ("rgb-jpeg.bin".into(), jpeg(DynamicImage::ImageRgb8(rgb))),
        ("gray-jpeg.bin".into(), jpeg(DynamicImage::ImageLuma8(luma))),
        ("thin-4096x1-png.bin".into(), thin),
        ("claims-16384x16384-png.bin".into(), huge),
    ]
}
