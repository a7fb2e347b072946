//! Half-precision conversions through the `half` crate: IEEE binary16 and bfloat16 bit
//! patterns to f32 (exact), and f32 to binary16 (round to nearest even).

/// Decodes an IEEE 754 binary16 bit pattern (subnormals, infinities and NaN included).
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Encodes an f32 as IEEE binary16 with round-to-nearest-even (overflow to infinity,
/// subnormals kept, NaN stays NaN).
pub fn f32_to_f16(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// Decodes a bfloat16 bit pattern (the top half of an f32).
pub fn bf16_to_f32(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

/// Little-endian element decoders of the float dtypes the loader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloatKind {
    F32,
    F16,
    BF16,
}

impl FloatKind {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            FloatKind::F32 => 4,
            FloatKind::F16 | FloatKind::BF16 => 2,
        }
    }

    /// Appends the decoded values of `bytes` (a whole number of elements) to `out`.
    pub(crate) fn decode_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            FloatKind::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            FloatKind::F16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            ),
            FloatKind::BF16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_values() {
        let cases: &[(u16, f32)] = &[
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0400, 6.103_515_6e-5), // smallest normal
            (0x0001, 5.960_464_5e-8), // smallest subnormal
            (0x03ff, 6.097_555e-5),   // largest subnormal
            (0x8001, -5.960_464_5e-8),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for &(bits, want) in cases {
            assert_eq!(f16_to_f32(bits), want, "f16 bits {bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(0x8000).is_sign_negative() && f16_to_f32(0x8000) == 0.0);
    }

    #[test]
    fn f16_round_trips_every_finite_pattern_through_f32() {
        // Every f16 value is exactly representable in f32; re-encoding by hand checks the decode.
        for bits in 0u16..=0xffff {
            let v = f16_to_f32(bits);
            if v.is_nan() {
                continue;
            }
            let exp = ((bits >> 10) & 0x1f) as i32;
            let man = (bits & 0x3ff) as f64;
            let mag = match exp {
                0 => man * 2f64.powi(-24),
                0x1f => f64::INFINITY,
                e => (1.0 + man / 1024.0) * 2f64.powi(e - 15),
            };
            let want = if bits & 0x8000 != 0 { -mag } else { mag };
            assert_eq!(v as f64, want, "f16 bits {bits:#06x}");
        }
    }

    #[test]
    fn bf16_known_values() {
        let cases: &[(u16, f32)] = &[
            (0x3f80, 1.0),
            (0xc040, -3.0),
            (0x3eab, 0.333_984_38),
            (0x7f7f, 3.389_531_4e38),
            (0x0001, 9.183_55e-41),
            (0xff80, f32::NEG_INFINITY),
        ];
        for &(bits, want) in cases {
            assert_eq!(bf16_to_f32(bits), want, "bf16 bits {bits:#06x}");
        }
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }

    #[test]
    fn decoders_read_little_endian() {
        let mut out = Vec::new();
        FloatKind::F16.decode_into(&[0x00, 0x3c, 0x00, 0xc0], &mut out);
        FloatKind::BF16.decode_into(&[0x80, 0x3f], &mut out);
        FloatKind::F32.decode_into(&1.5f32.to_le_bytes(), &mut out);
        assert_eq!(out, vec![1.0, -2.0, 1.0, 1.5]);
    }
}

#[cfg(test)]
mod f16_tests {
    use super::{f16_to_f32, f32_to_f16};

    #[test]
    fn f16_encoding_round_trips_and_rounds_to_nearest_even() {
        for bits in 0..=u16::MAX {
            let v = f16_to_f32(bits);
            if v.is_nan() {
                assert!(f16_to_f32(f32_to_f16(v)).is_nan());
            } else {
                assert_eq!(f32_to_f16(v), bits, "{v}");
            }
        }
        // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(1e-9), 0);
    }
}
