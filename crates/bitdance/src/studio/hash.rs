//! SHA-256 identities: of a model file, and of the token bits a run sampled.

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes` as 64 lowercase hex digits (a model file's identity in recipes and caches).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file fed in pieces (a model read from a Blob or a disk in chunks).
#[derive(Clone, Default)]
pub struct FileHasher(Sha256);

impl FileHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The SHA-256 of everything fed, as 64 lowercase hex digits (equal to `sha256_hex` of the
    /// whole file).
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// SHA-256 of the signs of ±1 tokens (one bit each, 1 for +1, packed little-endian in order),
/// as 64 hex digits: equal hashes mean the same sampled image, bit for bit, before decoding.
pub fn token_hash(tokens: &[f32]) -> String {
    let mut packed = vec![0u8; tokens.len().div_ceil(8)];
    for (i, &t) in tokens.iter().enumerate() {
        if t > 0.0 {
            packed[i / 8] |= 1 << (i % 8);
        }
    }
    let mut h = Sha256::new();
    h.update((tokens.len() as u64).to_le_bytes());
    h.update(&packed);
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashed_in_pieces_hashes_as_a_whole() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut h = FileHasher::new();
        for piece in bytes.chunks(333) {
            h.update(piece);
        }
        assert_eq!(h.finish(), sha256_hex(&bytes));
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_hashes_see_every_sign_and_the_length() {
        let a = [1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0];
        let mut b = a;
        b[8] = -1.0;
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_ne!(
            token_hash(&a[..8]),
            token_hash(&[a[..8].to_vec(), vec![-1.0]].concat())
        );
        assert_eq!(token_hash(&a), token_hash(&a));
    }
}
