//! Durations as the front ends print them (step times, time left).

/// A duration in seconds for people: "0.84 s" under 10 s, "42 s", "3 min 20 s", "1 h 5 min".
pub fn duration_text(secs: f64) -> String {
    if secs < 10.0 {
        return format!("{secs:.2} s");
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn each_range_has_its_unit() {
        assert_eq!(duration_text(0.8449), "0.84 s");
        assert_eq!(duration_text(42.4), "42 s");
        assert_eq!(duration_text(200.0), "3 min 20 s");
        assert_eq!(duration_text(3900.0), "1 h 5 min");
    }
}
