//! Durations as people write them (`30s`, `5m`, `1m30s`) and as the tool prints them.

use std::fmt;
use std::time::Duration;

/// A duration as the presets table and messages show it: `90s` as `1m30s`.
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        let mut wrote = false;
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
                wrote = true;
            }
        }
        if !wrote {
            match self.0.as_millis() {
                0 => f.write_str("0s")?,
                ms => write!(f, "{ms}ms")?,
            }
        }
        Ok(())
    }
}

/// Parses `30s`, `5m`, `1h`, `1m30s`, `1h2m3s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let bad = || {
        format!(
            "invalid duration '{text}': use seconds, minutes and hours such as 30s, 5m, 1h or 1m30s"
        )
    };
    if trimmed.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    let mut last_unit_rank = 0;
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (factor, rank) = match c.to_ascii_lowercase() {
            'h' => (3600, 1),
            'm' => (60, 2),
            's' => (1, 3),
            _ => return Err(bad()),
        };
        // Units must come in order (h, m, s) and each once, with a number before it.
        if digits.is_empty() || rank <= last_unit_rank {
            return Err(bad());
        }
        let value: u64 = digits.parse().map_err(|_| bad())?;
        total = value
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        last_unit_rank = rank;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2M"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn bad_durations_are_refused_with_the_value() {
        for bad in [
            "", "abc", "5x", "m", "30s5m", "1m1m", "10 s x", "-5s", "5m3",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(HumanDuration(Duration::from_secs(1800)).to_string(), "30m");
        assert_eq!(HumanDuration(Duration::ZERO).to_string(), "0s");
        assert_eq!(
            HumanDuration(Duration::from_millis(500)).to_string(),
            "500ms"
        );
    }
}
