//! Writing images as one grid, PNG or JPEG.

use anyhow::Context;

/// The image format an output path asks for by its extension: `.png`, or `.jpg` / `.jpeg`
/// (any case); anything else is refused, naming the path.
pub fn format_of(path: &std::path::Path) -> anyhow::Result<image::ImageFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(image::ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(image::ImageFormat::Jpeg),
        _ => anyhow::bail!(
            "{}: the output's extension must be .png or .jpg (.jpeg)",
            path.display()
        ),
    }
}

/// Encodes `count` RGB images [count, side, side, 3] as one grid (`studio::tile_grid`) in
/// `format`: PNG, or JPEG at quality 95.
pub fn encode_grid(
    rgb: &[u8],
    count: usize,
    side: usize,
    format: image::ImageFormat,
) -> anyhow::Result<Vec<u8>> {
    let canvas = bitdance::studio::tile_grid(rgb, count, side);
    let mut out = std::io::Cursor::new(Vec::new());
    if format == image::ImageFormat::Jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
            .encode_image(&canvas)
            .context("encoding the JPEG")?;
    } else {
        canvas
            .write_to(&mut out, format)
            .with_context(|| format!("encoding the {format:?} image"))?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::encode_grid;

    #[test]
    fn three_images_make_a_two_by_two_grid() {
        let side = 3;
        let rgb: Vec<u8> = (0..3 * side * side * 3).map(|v| v as u8).collect();
        let png = encode_grid(&rgb, 3, side, image::ImageFormat::Png).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (8, 8));
        // Image 2 starts at row 5, column 0; image 1 at column 5.
        assert_eq!(img.get_pixel(0, 5).0, [54, 55, 56]);
        assert_eq!(img.get_pixel(5, 0).0, [27, 28, 29]);
        assert_eq!(img.get_pixel(7, 7).0, [0, 0, 0]);
    }
}
