//! The generic mutation engine: byte-level edits any format gets, stacked a few at a time.
//! Bit flips, interesting bytes and integers (little- and big-endian), decimal numbers replaced
//! by interesting ones (JSON headers, configs), dictionary tokens inserted or swapped,
//! truncation, chunk deletion, duplication and copying, and splicing with another input.

use crate::rng::Rng;

/// Largest input the fuzzer builds: larger mutants are truncated.
pub const MAX_INPUT: usize = 256 << 10;

/// Interesting single bytes.
const BYTES: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x20, b'0', b'\n'];

/// Interesting integers, written at 1, 2, 4 or 8 bytes.
const INTS: [u64; 22] = [
    0,
    1,
    2,
    3,
    8,
    16,
    64,
    255,
    256,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
    u64::MAX - 1,
];

/// Interesting decimal numbers, written over a run of ASCII digits.
const DECIMALS: [&str; 34] = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "4",
    "16",
    "31",
    "64",
    "127",
    "128",
    "255",
    "256",
    "1024",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "4294967297",
    "1099511627776",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e308",
    "1e400",
    "0.5",
    "-0",
];

/// One to eight stacked generic mutations of `data`; `pool` gives splice partners, `dict` the
/// format's tokens.
pub fn mutate(rng: &mut Rng, data: &[u8], pool: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut out = data.to_vec();
    let most = if rng.chance(1, 2) { 2 } else { 8 };
    let n = 1 + rng.below(most);
    for _ in 0..n {
        mutate_once(rng, &mut out, pool, dict);
    }
    out.truncate(MAX_INPUT);
    out
}

/// One generic mutation of `out`, in place.
pub fn mutate_once(rng: &mut Rng, out: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    if out.is_empty() {
        out.push(*rng.pick(&BYTES));
        return;
    }
    let len = out.len();
    match rng.below(14) {
        0 => {
            let at = rng.below(len);
            out[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(len);
            out[at] = *rng.pick(&BYTES);
        }
        2 => {
            let at = rng.below(len);
            out[at] = rng.next_u64() as u8;
        }
        3 => {
            let at = rng.below(len);
            let delta = rng.below(70) as i64 - 35;
            out[at] = (out[at] as i64 + delta) as u8;
        }
        4 => write_int(rng, out),
        5 | 6 => {
            if !replace_number(rng, out) {
                write_int(rng, out);
            }
        }
        7 => out.truncate(rng.below(len)),
        8 => {
            let at = rng.below(len);
            let n = rng.small_len(len - at);
            out.drain(at..at + n.min(len - at));
        }
        9 => {
            let at = rng.below(len);
            let n = rng.small_len(len - at).min(len - at);
            let chunk = out[at..at + n].to_vec();
            let to = rng.below(len + 1);
            out.splice(to..to, chunk);
        }
        10 => {
            let from = rng.below(len);
            let n = rng.small_len(len - from).min(len - from);
            let to = rng.below(len - n + 1);
            out.copy_within(from..from + n, to);
        }
        11 if !dict.is_empty() => {
            if !swap_token(rng, out, dict) {
                let token = rng.pick(dict);
                let to = rng.below(len + 1);
                out.splice(to..to, token.iter().copied());
            }
        }
        12 if !pool.is_empty() => {
            let other = rng.pick(pool);
            if !other.is_empty() {
                let cut = rng.below(len);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
        }
        _ => {
            let to = rng.below(len + 1);
            let n = rng.small_len(32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(to..to, bytes);
        }
    }
}

/// Writes an interesting integer (1, 2, 4 or 8 bytes, either byte order) at a random offset.
pub fn write_int(rng: &mut Rng, out: &mut [u8]) {
    let width = *rng.pick(&[1usize, 2, 4, 8]);
    if out.len() < width {
        return;
    }
    let v = interesting_int(rng);
    let at = rng.below(out.len() - width + 1);
    let bytes = if rng.chance(1, 2) {
        v.to_le_bytes()[..width].to_vec()
    } else {
        v.to_be_bytes()[8 - width..].to_vec()
    };
    out[at..at + width].copy_from_slice(&bytes);
}

/// An interesting integer: a listed one, sometimes shifted by one or a random power of two.
pub fn interesting_int(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 1u64 << rng.below(64),
        1 => (1u64 << rng.below(64)).wrapping_add(1),
        2 => rng.below(1024) as u64,
        _ => *rng.pick(&INTS),
    }
}

/// An interesting decimal number as text.
pub fn interesting_decimal(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => rng.next_u64().to_string(),
        1 => (1u64 << rng.below(64)).to_string(),
        2 => rng.below(300).to_string(),
        _ => rng.pick(&DECIMALS).to_string(),
    }
}

/// Replaces a random run of ASCII digits (with its minus sign) by an interesting decimal;
/// false when `out` holds no digit.
pub fn replace_number(rng: &mut Rng, out: &mut Vec<u8>) -> bool {
    // Reservoir-sample one run start without collecting them all.
    let mut chosen = None;
    let mut seen = 0;
    for i in 0..out.len() {
        let starts = out[i].is_ascii_digit() && (i == 0 || !out[i - 1].is_ascii_digit());
        if starts {
            seen += 1;
            if rng.below(seen) == 0 {
                chosen = Some(i);
            }
        }
    }
    let Some(mut start) = chosen else {
        return false;
    };
    let mut end = start;
    while end < out.len() && (out[end].is_ascii_digit() || out[end] == b'.') {
        end += 1;
    }
    if start > 0 && out[start - 1] == b'-' {
        start -= 1;
    }
    let text = interesting_decimal(rng);
    out.splice(start..end, text.into_bytes());
    true
}

/// Replaces an occurrence of one dictionary token by another; false when none occurs.
fn swap_token(rng: &mut Rng, out: &mut Vec<u8>, dict: &[&[u8]]) -> bool {
    let from = rng.pick(dict);
    if from.is_empty() || from.len() > out.len() {
        return false;
    }
    let start = rng.below(out.len());
    let found = (start..=out.len() - from.len())
        .chain(0..start.min(out.len() - from.len() + 1))
        .find(|&i| out[i..].starts_with(from));
    let Some(at) = found else {
        return false;
    };
    let to = rng.pick(dict);
    out.splice(at..at + from.len(), to.iter().copied());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let seed = b"{\"a\":{\"shape\":[3,4]}} tail".to_vec();
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..200)
                .map(|_| mutate(&mut rng, &seed, std::slice::from_ref(&seed), &[b"\"F32\""]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn numbers_are_replaced_whole() {
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let mut v = b"[12,-345]".to_vec();
            assert!(replace_number(&mut rng, &mut v));
            let s = String::from_utf8(v).unwrap();
            assert!(
                s.starts_with('[') && s.ends_with(']') && s.contains(','),
                "{s}"
            );
        }
    }
}
