//! PNG text chunks (`tEXt`): inserted into an encoded PNG before its `IEND`, and read back by a
//! parser that checks every length and CRC against the bytes it has (hostile files are refused
//! with the reason, never trusted).

use crate::{Error, Result};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// Largest text a chunk written or read here may hold (a recipe is under 2 KiB).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

fn invalid(what: &str) -> Error {
    Error::Invalid(format!("PNG: {what}"))
}

/// `png` (a whole PNG file) with a `tEXt` chunk `keyword`: `text` inserted before `IEND`,
/// replacing chunks of the same keyword. The keyword is 1-79 Latin-1 letters, digits, spaces
/// or `-_.`; the text Latin-1 without NUL (ASCII JSON is), at most `MAX_TEXT_BYTES`.
pub fn with_png_text(png: &[u8], keyword: &str, text: &str) -> Result<Vec<u8>> {
    let valid_keyword = !keyword.is_empty()
        && keyword.len() < 80
        && keyword
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_.".contains(&b));
    if !valid_keyword {
        return Err(invalid(&format!(
            "text keyword '{keyword}' is not 1-79 plain characters"
        )));
    }
    if text.len() > MAX_TEXT_BYTES || !text.is_ascii() || text.contains('\0') {
        return Err(invalid(&format!(
            "text for '{keyword}' must be ASCII without NUL, at most {MAX_TEXT_BYTES} bytes"
        )));
    }
    let chunks = chunks(png)?;
    let mut out = SIGNATURE.to_vec();
    for c in &chunks {
        if c.kind == *b"IEND" {
            let mut data = keyword.as_bytes().to_vec();
            data.push(0);
            data.extend_from_slice(text.as_bytes());
            write_chunk(&mut out, b"tEXt", &data);
        }
        if c.kind == *b"tEXt" && text_of(c.data).is_some_and(|(k, _)| k == keyword) {
            continue;
        }
        write_chunk(&mut out, &c.kind, c.data);
    }
    Ok(out)
}

/// Every `tEXt` chunk of `png` as (keyword, text), in file order; chunks whose keyword or
/// text is not valid Latin-1 are skipped. Errors name what is wrong with the file.
pub fn png_text_chunks(png: &[u8]) -> Result<Vec<(String, String)>> {
    Ok(chunks(png)?
        .iter()
        .filter(|c| c.kind == *b"tEXt")
        .filter_map(|c| text_of(c.data))
        .collect())
}

struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
}

/// The chunks of a PNG up to and including `IEND`, each length and CRC checked.
fn chunks(png: &[u8]) -> Result<Vec<Chunk<'_>>> {
    if png.len() < SIGNATURE.len() || png[..8] != SIGNATURE {
        return Err(invalid("not a PNG file (no PNG signature)"));
    }
    let mut at = SIGNATURE.len();
    let mut out = Vec::new();
    loop {
        let header = png
            .get(at..at + 8)
            .ok_or_else(|| invalid(&format!("truncated at byte {at}: no IEND chunk")))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        let end = (at + 8)
            .checked_add(len)
            .and_then(|e| e.checked_add(4))
            .filter(|&e| e <= png.len())
            .ok_or_else(|| {
                invalid(&format!(
                    "chunk {} at byte {at} claims {len} bytes, past the end of the file ({} bytes)",
                    String::from_utf8_lossy(&kind),
                    png.len()
                ))
            })?;
        let data = &png[at + 8..end - 4];
        let crc = u32::from_be_bytes([png[end - 4], png[end - 3], png[end - 2], png[end - 1]]);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        if hasher.finalize() != crc {
            return Err(invalid(&format!(
                "chunk {} at byte {at} fails its CRC",
                String::from_utf8_lossy(&kind)
            )));
        }
        out.push(Chunk { kind, data });
        if kind == *b"IEND" {
            return Ok(out);
        }
        at = end;
    }
}

/// (keyword, text) of a `tEXt` chunk's data (Latin-1 both; None when malformed or too long).
fn text_of(data: &[u8]) -> Option<(String, String)> {
    let nul = data.iter().position(|&b| b == 0)?;
    let (keyword, text) = (&data[..nul], &data[nul + 1..]);
    if keyword.is_empty() || keyword.len() > 79 || text.len() > MAX_TEXT_BYTES {
        return None;
    }
    let latin1 = |b: &[u8]| b.iter().map(|&c| c as char).collect::<String>();
    Some((latin1(keyword), latin1(text)))
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_png() -> Vec<u8> {
        let mut bytes = Vec::new();
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        bytes
    }

    #[test]
    fn text_round_trips_replaces_its_keyword_and_keeps_the_image() {
        let png = tiny_png();
        let once = with_png_text(&png, "bitdance-recipe", "{\"a\":1}").unwrap();
        let twice = with_png_text(&once, "bitdance-recipe", "{\"a\":2}").unwrap();
        let other = with_png_text(&twice, "Comment", "hello").unwrap();
        assert_eq!(
            png_text_chunks(&other).unwrap(),
            vec![
                ("bitdance-recipe".to_string(), "{\"a\":2}".to_string()),
                ("Comment".to_string(), "hello".to_string())
            ]
        );
        let decoded = image::load_from_memory(&other).unwrap().to_rgb8();
        assert_eq!(decoded.get_pixel(2, 1), &image::Rgb([10, 20, 30]));
    }

    #[test]
    fn hostile_files_are_refused_with_the_reason() {
        let png = with_png_text(&tiny_png(), "k", "v").unwrap();
        let err = |bytes: &[u8]| png_text_chunks(bytes).unwrap_err().to_string();
        assert!(err(b"GIF89a").contains("not a PNG"));
        assert!(err(&png[..png.len() - 6]).contains("truncated"));
        assert!(err(&png[..png.len() - 14]).contains("past the end"));
        let mut bad_crc = png.clone();
        let last = bad_crc.len() - 20;
        bad_crc[last] ^= 1;
        assert!(err(&bad_crc).contains("CRC") || err(&bad_crc).contains("past the end"));
        let mut huge = png.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(err(&huge).contains("past the end"));
        assert!(with_png_text(&png, "", "v").is_err());
        assert!(with_png_text(&png, "k", "caf\u{e9}").is_err());
        assert!(with_png_text(&png, "k", &"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
    }
}
