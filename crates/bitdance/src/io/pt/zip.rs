//! A minimal reader of the zip archives `torch.save` writes: the central directory, and the
//! data of stored (uncompressed) entries, CRC-32-checked when read. Compressed entries are
//! refused with a clear error.

use crate::{Error, Result};

/// One archive member: its name, its bytes' range in the file and their CRC-32.
pub(super) struct Entry {
    pub name: String,
    pub start: usize,
    pub len: usize,
    pub crc: u32,
}

impl Entry {
    /// The member's bytes, after checking them against the CRC-32 of the central directory
    /// (a damaged download fails here, naming the member, instead of loading wrong weights).
    pub(super) fn data<'a>(&self, label: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
        let data = &bytes[self.start..self.start + self.len];
        let found = crc32fast::hash(data);
        if found != self.crc {
            return Err(Error::Invalid(format!(
                "{label}: archive member '{}' is damaged (CRC-32 {found:08x}, the archive \
                 records {:08x})",
                self.name, self.crc
            )));
        }
        Ok(data)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The members of the archive `bytes` (`label` names it in errors).
pub(super) fn entries(label: &str, bytes: &[u8]) -> Result<Vec<Entry>> {
    let bad = |what: &str| {
        Error::Invalid(format!(
            "{label}: not a readable torch.save zip archive ({what})"
        ))
    };
    // Before PyTorch 1.6, torch.save wrote a bare pickle stream starting with its magic number
    // (protocol 2, then a 10-byte long).
    if bytes.starts_with(b"\x80\x02\x8a\x0a") {
        return Err(Error::Invalid(format!(
            "{label}: a legacy torch.save file (PyTorch < 1.6, not a zip archive): load it and save it again with a current PyTorch, then convert that file"
        )));
    }
    // End of central directory: the last "PK\5\6" within the final 64 KiB + 22 bytes.
    let tail = bytes.len().saturating_sub(65_557);
    let eocd = (tail..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("no end-of-central-directory record; truncated?"))?;
    let mut count = u16_at(bytes, eocd + 10).ok_or_else(|| bad("short record"))? as u64;
    let mut dir = u32_at(bytes, eocd + 16).ok_or_else(|| bad("short record"))? as u64;
    if count == 0xffff || dir == 0xffff_ffff {
        // Zip64: the locator sits just before the end record.
        let loc = eocd
            .checked_sub(20)
            .filter(|&l| bytes[l..].starts_with(b"PK\x06\x07"));
        let loc = loc.ok_or_else(|| bad("zip64 locator missing"))?;
        let rec = u64_at(bytes, loc + 8).ok_or_else(|| bad("zip64 locator"))? as usize;
        if !bytes
            .get(rec..)
            .is_some_and(|r| r.starts_with(b"PK\x06\x06"))
        {
            return Err(bad("zip64 end record missing"));
        }
        count = u64_at(bytes, rec + 32).ok_or_else(|| bad("zip64 record"))?;
        dir = u64_at(bytes, rec + 48).ok_or_else(|| bad("zip64 record"))?;
    }
    let mut at = dir as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        if !bytes
            .get(at..)
            .is_some_and(|r| r.starts_with(b"PK\x01\x02"))
        {
            return Err(bad("central directory entry missing"));
        }
        let short = || bad("short central directory entry");
        let method = u16_at(bytes, at + 10).ok_or_else(short)?;
        let crc = u32_at(bytes, at + 16).ok_or_else(short)?;
        let mut csize = u32_at(bytes, at + 20).ok_or_else(short)? as u64;
        let mut usize_ = u32_at(bytes, at + 24).ok_or_else(short)? as u64;
        let name_len = u16_at(bytes, at + 28).ok_or_else(short)? as usize;
        let extra_len = u16_at(bytes, at + 30).ok_or_else(short)? as usize;
        let comment_len = u16_at(bytes, at + 32).ok_or_else(short)? as usize;
        let mut local = u32_at(bytes, at + 42).ok_or_else(short)? as u64;
        let name_bytes = bytes.get(at + 46..at + 46 + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name_bytes).to_string();
        // Zip64 extra field (id 1): the 0xffffffff sizes and offset, in that order.
        let extra = bytes
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(short)?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let size = u16_at(extra, e + 2).unwrap_or(0) as usize;
            if id == 1 {
                let mut f = e + 4;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xffff_ffff {
                        *field = u64_at(extra, f).ok_or_else(short)?;
                        f += 8;
                    }
                }
            }
            e += 4 + size;
        }
        if method != 0 {
            return Err(Error::Invalid(format!(
                "{label}: archive member '{name}' is compressed (method {method}); torch.save \
                 stores members uncompressed, so this is not a checkpoint it wrote"
            )));
        }
        let l = local as usize;
        if !bytes.get(l..).is_some_and(|r| r.starts_with(b"PK\x03\x04")) {
            return Err(bad("local header missing"));
        }
        let lname = u16_at(bytes, l + 26).ok_or_else(short)? as usize;
        let lextra = u16_at(bytes, l + 28).ok_or_else(short)? as usize;
        let start = l + 30 + lname + lextra;
        let len = csize as usize;
        if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
            return Err(Error::Invalid(format!(
                "{label}: archive member '{name}' runs past the end of the file (truncated?)"
            )));
        }
        out.push(Entry {
            name,
            start,
            len,
            crc,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}
