//! Billing periods: calendar months in UTC, as `[start_ms, end_ms)`.

const DAY_MS: i64 = 86_400_000;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub year: i32,
    /// 1..=12.
    pub month: u32,
}

impl Period {
    /// The month `ms` falls in.
    pub fn containing(ms: i64) -> Period {
        let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
        Period { year, month }
    }

    pub fn start_ms(self) -> i64 {
        days_from_civil(self.year, self.month, 1) * DAY_MS
    }

    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    pub fn next(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn previous(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// `2026-11`.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// Parses `2026-11`.
    pub fn parse(s: &str) -> Option<Period> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let year: i32 = y.parse().ok()?;
        let month: u32 = m.parse().ok()?;
        ((1970..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Period { year, month })
    }
}

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + if m <= 2 { 1 } else { 0 }) as i32;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_calendar_bounds() {
        // 2026-11-28T21:00:00Z
        let p = Period::containing(1_795_899_600_000);
        assert_eq!(
            p,
            Period {
                year: 2026,
                month: 11
            }
        );
        assert_eq!(p.start_ms(), 1_793_491_200_000); // 2026-11-01
        assert_eq!(p.end_ms(), 1_796_083_200_000); // 2026-12-01
        assert_eq!(
            p.next().next(),
            Period {
                year: 2027,
                month: 1
            }
        );
        assert_eq!(
            Period {
                year: 2024,
                month: 3
            }
            .start_ms()
                - Period {
                    year: 2024,
                    month: 2
                }
                .start_ms(),
            29 * DAY_MS
        );
        assert_eq!(
            Period::containing(0),
            Period {
                year: 1970,
                month: 1
            }
        );
        assert_eq!(Period::containing(p.end_ms() - 1), p);
        assert_eq!(Period::containing(p.end_ms()), p.next());
        assert_eq!(p.previous().next(), p);
        assert_eq!(Period::parse("2026-11"), Some(p));
        assert_eq!(p.label(), "2026-11");
        for bad in ["2026-13", "2026-1", "26-11", "x", "2026-00"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }
}
