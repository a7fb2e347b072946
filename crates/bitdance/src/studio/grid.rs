//! Images side by side: `count` square RGB images in a near-square grid with 2-pixel gaps, as
//! the CLI writes them and the apps show a fine-tuning run's samples.

use image::RgbImage;

/// `count` images of `side` x `side` (RGB8, one after another in `rgb`) tiled into one image:
/// columns the smallest square number fitting them, rows as needed, 2 black pixels between.
pub fn tile_grid(rgb: &[u8], count: usize, side: usize) -> RgbImage {
    let cols = (1..=count).find(|c| c * c >= count).unwrap_or(1);
    let rows = count.div_ceil(cols).max(1);
    let gap = if count > 1 { 2 } else { 0 };
    let width = cols * side + (cols - 1) * gap;
    let height = rows * side + (rows - 1) * gap;
    let mut canvas = RgbImage::new(width as u32, height as u32);
    for i in 0..count {
        let (x0, y0) = ((i % cols) * (side + gap), (i / cols) * (side + gap));
        for y in 0..side {
            for x in 0..side {
                let p = ((i * side + y) * side + x) * 3;
                canvas.put_pixel(
                    (x0 + x) as u32,
                    (y0 + y) as u32,
                    image::Rgb([rgb[p], rgb[p + 1], rgb[p + 2]]),
                );
            }
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::tile_grid;

    #[test]
    fn images_tile_row_by_row_with_gaps() {
        let side = 2;
        let rgb: Vec<u8> = (0..3u8)
            .flat_map(|i| vec![10 * (i + 1); side * side * 3])
            .collect();
        let grid = tile_grid(&rgb, 3, side);
        assert_eq!(grid.dimensions(), (6, 6));
        assert_eq!(grid.get_pixel(0, 0).0, [10; 3]);
        assert_eq!(grid.get_pixel(4, 0).0, [20; 3]);
        assert_eq!(grid.get_pixel(2, 0).0, [0; 3], "gap");
        assert_eq!(grid.get_pixel(0, 4).0, [30; 3]);
    }
}
