//! Just enough zip for the `.pt` mutator and seeds: read the members of a stored archive and
//! write members back as a valid stored archive (local headers, CRC-32, central directory).

/// Archive members as (name, bytes), in directory order; `None` when `bytes` is no readable
/// zip (the mutator then falls back to byte-level edits).
pub fn read(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))?;
    let count = u16_at(eocd + 10)? as usize;
    let mut at = u32_at(eocd + 16)? as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        if !bytes.get(at..)?.starts_with(b"PK\x01\x02") {
            return None;
        }
        let size = u32_at(at + 20)? as usize;
        let name_len = u16_at(at + 28)? as usize;
        let skip = name_len + u16_at(at + 30)? as usize + u16_at(at + 32)? as usize;
        let local = u32_at(at + 42)? as usize;
        let name = String::from_utf8_lossy(bytes.get(at + 46..at + 46 + name_len)?).to_string();
        let start = local + 30 + u16_at(local + 26)? as usize + u16_at(local + 28)? as usize;
        out.push((name, bytes.get(start..start.checked_add(size)?)?.to_vec()));
        at += 46 + skip;
    }
    Some(out)
}

/// A stored (uncompressed) zip archive of `members`, with correct CRC-32s.
pub fn write(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dir = Vec::new();
    for (name, data) in members {
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let fixed = |sig: &[u8], extra: &[u8]| {
            let mut h = sig.to_vec();
            h.extend_from_slice(extra);
            // Version needed, flags, method (stored), time, date.
            h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&[0, 0]); // extra length
            h
        };
        out.extend(fixed(b"PK\x03\x04", &[]));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        dir.extend(fixed(b"PK\x01\x02", &[20, 0]));
        dir.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
        dir.extend_from_slice(&offset.to_le_bytes());
        dir.extend_from_slice(name.as_bytes());
    }
    let dir_at = out.len() as u32;
    out.extend_from_slice(&dir);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    let n = (members.len() as u16).to_le_bytes();
    out.extend_from_slice(&[n[0], n[1], n[0], n[1]]);
    out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
    out.extend_from_slice(&dir_at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_archives_read_back() {
        let members = vec![
            ("a/data.pkl".to_string(), b"\x80\x02}.".to_vec()),
            ("a/data/0".to_string(), vec![7; 12]),
        ];
        assert_eq!(super::read(&super::write(&members)).unwrap(), members);
    }
}
