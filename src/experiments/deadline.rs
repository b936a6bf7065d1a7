//! `--time-limit`: a command with a wall-clock budget (a Slurm job's `--time`, the rest of a
//! working session) starts a run only when the run is projected to end before the budget does.
//! A run killed half-way is lost (nothing checkpoints a run mid-way), so a run that would not fit
//! is left for the next command, which resumes the plan where this one stopped.
//!
//! The projection is the run's epoch cap × the largest wall seconds per epoch measured on this
//! data ([`super::cost::run_projection`]): an upper bound for a run that stops early, and the
//! slowest of the measured runs, so a run on a loaded machine is not underestimated. A run with
//! no projection (a BERT model with no finished run in the folder) starts, and the command says so.

use super::cost::run_projection;
use super::RunRecord;
use crate::train::RunConfig;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A wall-clock budget in whole seconds, at least one: Slurm's `--time` forms (`M`, `M:S`,
/// `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; a bare number is minutes) or units in descending order
/// (`90m`, `2h30m`, `1d12h`, `45s`). Displays as `H:MM:SS` (`D-HH:MM:SS` from a day on), which
/// parses back to the same budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeLimit(Duration);

/// Why a `--time-limit` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeLimitError {
    #[error(
        "{0:?} is not a duration: give minutes (90), Slurm's M:S, H:M:S, D-H, D-H:M or D-H:M:S, \
         or units such as 2h30m, 45m, 1d12h, 600s"
    )]
    Syntax(String),
    #[error("{0:?}: the budget must be at least one second")]
    Zero(String),
    #[error("{0:?}: too large (at most a century)")]
    TooLarge(String),
}

impl TimeLimit {
    /// A budget of `seconds`: at least one, at most a century.
    pub fn from_secs(seconds: u64) -> Result<Self, TimeLimitError> {
        Self::checked(seconds, &seconds.to_string())
    }

    /// The one check of a budget (`input`: what the user wrote, for the error): at least one
    /// second, and at most a century, so that `Instant + budget` cannot overflow (a century is
    /// "no limit" in practice).
    fn checked(seconds: u64, input: &str) -> Result<Self, TimeLimitError> {
        match seconds {
            0 => Err(TimeLimitError::Zero(input.to_string())),
            n if n > 100 * 365 * 86_400 => Err(TimeLimitError::TooLarge(input.to_string())),
            n => Ok(Self(Duration::from_secs(n))),
        }
    }

    /// The budget.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// `digits` as a number (`u64::MAX` past it, which the sums then refuse as too large), or `None`
/// (empty, a sign, anything but ASCII digits).
fn number(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().unwrap_or(u64::MAX))
}

/// Seconds of Slurm's forms: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S` (`None`: not one of
/// them; `Some(None)`: too large for a `u64`).
fn slurm_seconds(s: &str) -> Option<Option<u64>> {
    let (days, rest) = match s.split_once('-') {
        Some((d, rest)) => (Some(number(d)?), rest),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(number).collect::<Option<_>>()?;
    // (hours, minutes, seconds) of each form
    let (h, m, sec) = match (days.is_some(), parts.as_slice()) {
        (false, [m]) => (0, *m, 0),
        (false, [m, s]) => (0, *m, *s),
        (false, [h, m, s]) => (*h, *m, *s),
        (true, [h]) => (*h, 0, 0),
        (true, [h, m]) => (*h, *m, 0),
        (true, [h, m, s]) => (*h, *m, *s),
        _ => return None,
    };
    Some(checked_seconds(&[
        (days.unwrap_or(0), 86_400),
        (h, 3600),
        (m, 60),
        (sec, 1),
    ]))
}

/// Seconds of units in descending order, each at most once: `1d2h3m4s`, `90m`, `2h30m` (`None`:
/// not that form; `Some(None)`: too large for a `u64`).
fn unit_seconds(s: &str) -> Option<Option<u64>> {
    const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)];
    let mut terms = Vec::new();
    let mut rest = s;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_ascii_digit())?;
        let n = number(&rest[..end])?;
        let unit = rest[end..].chars().next()?;
        let k = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        terms.push((n, UNITS[k].1));
        next_unit = k + 1;
        rest = &rest[end + unit.len_utf8()..];
    }
    (!terms.is_empty()).then(|| checked_seconds(&terms))
}

/// Σ n × unit, `None` on overflow.
fn checked_seconds(terms: &[(u64, u64)]) -> Option<u64> {
    terms.iter().try_fold(0u64, |acc, &(n, unit)| {
        acc.checked_add(n.checked_mul(unit)?)
    })
}

impl FromStr for TimeLimit {
    type Err = TimeLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let parsed = if t.ends_with(|c: char| c.is_ascii_alphabetic()) {
            unit_seconds(t)
        } else {
            slurm_seconds(t)
        };
        match parsed {
            None => Err(TimeLimitError::Syntax(s.to_string())),
            Some(None) => Err(TimeLimitError::TooLarge(s.to_string())),
            Some(Some(n)) => Self::checked(n, s),
        }
    }
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
        if d > 0 {
            write!(f, "{d}-{h:02}:{m:02}:{sec:02}")
        } else {
            write!(f, "{h}:{m:02}:{sec:02}")
        }
    }
}

/// A run `--time-limit` did not start: it was projected to end after the budget.
#[derive(Debug, Clone, Serialize)]
pub struct NotStarted {
    pub model: String,
    pub variant: String,
    pub seed: u64,
    /// Its projected wall seconds.
    pub projected_s: f64,
    /// The seconds left of the budget when it was due to start.
    pub left_s: f64,
}

/// When the budget ends, and what a run is projected to take.
#[derive(Debug)]
pub(crate) struct Deadline {
    at: Instant,
    /// Finished runs of the same data: those in `--out` at the start, then each run this command
    /// finishes ([`Self::learn`]), so a later run is projected from what this command measured.
    measured: std::sync::Mutex<Vec<RunRecord>>,
    train_clips: usize,
    gpu: bool,
}

impl Deadline {
    /// The budget `limit` from `started`; `measured` are finished runs of the same data (their
    /// wall seconds per epoch project a run), `gpu`: the plan trains on a GPU.
    pub(crate) fn new(
        limit: TimeLimit,
        started: Instant,
        measured: Vec<RunRecord>,
        train_clips: usize,
        gpu: bool,
    ) -> Self {
        Self {
            at: started + limit.duration(),
            measured: std::sync::Mutex::new(measured),
            train_clips,
            gpu,
        }
    }

    /// Whether a run of `c` started at `now` is projected to end before the budget does.
    pub(crate) fn admit(&self, c: &RunConfig, now: Instant) -> Admission {
        let projected = {
            let measured = self.measured.lock().expect("measured runs");
            run_projection(c, self.train_clips, &measured, self.gpu)
        };
        let Some(projected_s) = projected else {
            return Admission::Unprojected;
        };
        let left_s = self.at.saturating_duration_since(now).as_secs_f64();
        if projected_s <= left_s {
            Admission::Fits
        } else {
            Admission::TooLong(NotStarted {
                model: c.model.kind().name().to_string(),
                variant: c.variant.name().to_string(),
                seed: c.seed,
                projected_s,
                left_s,
            })
        }
    }

    /// Counts a run this command just finished among the measured ones: the runs after it are
    /// projected from its wall seconds per epoch too.
    pub(crate) fn learn(&self, finished: &RunRecord) {
        self.measured
            .lock()
            .expect("measured runs")
            .push(finished.clone());
    }
}

/// What [`Deadline::admit`] says of a run about to start.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Projected to end before the budget: it starts.
    Fits,
    /// Nothing projects it: it starts (and the command says so).
    Unprojected,
    /// Projected to end after the budget: it is not started.
    TooLong(NotStarted),
}

/// What `--time-limit` would start of a plan's runs, simulated without training (`plan
/// --time-limit`): see [`schedule`].
#[derive(Debug)]
pub(crate) struct Schedule {
    /// Per run (plan order): whether it would start.
    pub starts: Vec<bool>,
    /// When the last started run is projected to end, seconds into the budget.
    pub end_s: f64,
    /// Runs nothing projects: they start, and are counted as taking no time (so `end_s` and the
    /// runs after them are optimistic).
    pub unprojected: usize,
}

/// The runs `run` would start under a budget of `limit_s` seconds with `jobs` workers, if each
/// run took exactly its projection (`projected_s[i]`, plan order; `None`: nothing projects it):
/// as [`super::run_plan`] does, the first free worker takes the next run, which starts when its
/// projection fits in what is left and is otherwise passed over (the worker takes the next one).
pub(crate) fn schedule(projected_s: &[Option<f64>], jobs: usize, limit_s: f64) -> Schedule {
    let mut free_at = vec![0.0f64; jobs.max(1)];
    let mut starts = Vec::with_capacity(projected_s.len());
    let (mut end_s, mut unprojected) = (0.0f64, 0);
    for p in projected_s {
        let (w, now) = free_at
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one worker");
        let ends = now + p.unwrap_or(0.0);
        let start = p.is_none() || ends <= limit_s;
        if start {
            free_at[w] = ends;
            end_s = end_s.max(ends);
            unprojected += usize::from(p.is_none());
        }
        starts.push(start);
    }
    Schedule {
        starts,
        end_s,
        unprojected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: &str) -> u64 {
        s.parse::<TimeLimit>().unwrap().duration().as_secs()
    }

    #[test]
    fn slurm_forms_read_as_slurm_reads_them() {
        assert_eq!(secs("90"), 90 * 60, "a bare number is minutes");
        assert_eq!(secs("5:30"), 5 * 60 + 30, "M:S");
        assert_eq!(secs("2:00:05"), 2 * 3600 + 5, "H:M:S");
        assert_eq!(secs("1-12"), 36 * 3600, "D-H");
        assert_eq!(secs("1-0:30"), 86_400 + 30 * 60, "D-H:M");
        assert_eq!(secs("2-01:02:03"), 2 * 86_400 + 3723, "D-H:M:S");
        assert_eq!(secs(" 45 "), 45 * 60, "surrounding blanks");
    }

    #[test]
    fn unit_forms_add_their_terms() {
        assert_eq!(secs("2h30m"), 9000);
        assert_eq!(secs("45s"), 45);
        assert_eq!(secs("1d12h"), 36 * 3600);
        assert_eq!(secs("1d2h3m4s"), 93_784);
    }

    #[test]
    fn malformed_zero_and_huge_budgets_are_refused_with_their_reason() {
        for bad in [
            "",
            "h",
            "2h30",
            "30m2h",
            "2h2h",
            "1:2:3:4",
            "1-2-3",
            "-5",
            "+5",
            "1.5h",
            "1x",
            "UNLIMITED",
            "1-",
            ":30",
            "5:",
        ] {
            assert!(
                matches!(bad.parse::<TimeLimit>(), Err(TimeLimitError::Syntax(_))),
                "{bad:?}: {:?}",
                bad.parse::<TimeLimit>()
            );
        }
        for zero in ["0", "0:00", "0h0m", "0-0:0:0"] {
            assert!(
                matches!(zero.parse::<TimeLimit>(), Err(TimeLimitError::Zero(_))),
                "{zero:?}"
            );
        }
        for huge in ["99999999999999999999", "200000000000000000d", "40000-0"] {
            assert!(
                matches!(huge.parse::<TimeLimit>(), Err(TimeLimitError::TooLarge(_))),
                "{huge:?}: {:?}",
                huge.parse::<TimeLimit>()
            );
        }
        // the constructor from seconds checks exactly what parsing does
        assert!(matches!(
            TimeLimit::from_secs(0),
            Err(TimeLimitError::Zero(_))
        ));
        assert!(matches!(
            TimeLimit::from_secs(u64::MAX),
            Err(TimeLimitError::TooLarge(_))
        ));
        let msg = "2h30".parse::<TimeLimit>().unwrap_err().to_string();
        assert!(
            msg.starts_with("\"2h30\" is not a duration: give minutes"),
            "{msg}"
        );
    }

    /// A finished run of TFN's NLL that trained `epochs` epochs in `wall_s` seconds.
    fn finished(epochs: usize, wall_s: f64) -> RunRecord {
        RunRecord {
            key: "k".into(),
            tier: crate::data::Tier::Synthetic,
            profile: crate::experiments::Profile::Quick,
            data: "d".into(),
            result: crate::train::RunResult::finished_for_tests(
                crate::models::ModelKind::Tfn,
                epochs,
                wall_s,
                None,
            ),
        }
    }

    #[test]
    fn a_run_finished_by_this_command_projects_the_runs_after_it() {
        let now = Instant::now();
        let limit = TimeLimit::from_secs(3600).unwrap();
        // TFN with the embedded table's MOSI seconds: a 10-epoch run fits in an hour
        let d = Deadline::new(limit, now, Vec::new(), 1281, false);
        let c = finished(1, 1.0).result.config;
        assert!(matches!(d.admit(&c, now), Admission::Fits));
        // this command then measures 1000 s per epoch: 10 epochs no longer fit
        d.learn(&finished(2, 2000.0));
        match d.admit(&c, now) {
            Admission::TooLong(n) => assert!((n.projected_s - 10_000.0).abs() < 1e-6, "{n:?}"),
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_budget(s in 1u64..40 * 365 * 86_400) {
            let t = TimeLimit::from_secs(s).unwrap();
            prop_assert_eq!(t.to_string().parse::<TimeLimit>().unwrap(), t);
        }

        #[test]
        fn slurm_d_h_m_s_equals_the_units_form(d in 0u64..400, h in 0u64..24, m in 0u64..60, s in 0u64..60) {
            prop_assume!(d + h + m + s > 0);
            let slurm = format!("{d}-{h}:{m}:{s}").parse::<TimeLimit>().unwrap();
            let units = format!("{d}d{h}h{m}m{s}s").parse::<TimeLimit>().unwrap();
            prop_assert_eq!(slurm, units);
            prop_assert_eq!(slurm.duration().as_secs(), ((d * 24 + h) * 60 + m) * 60 + s);
        }

        /// Every run the schedule starts ends within the budget (runs taken in order by the
        /// first free of `jobs` workers).
        #[test]
        fn every_started_run_ends_within_the_budget(
            p in proptest::collection::vec(0.0f64..100.0, 0..30),
            jobs in 1usize..5,
            limit in 0.0f64..500.0,
        ) {
            let projected: Vec<Option<f64>> = p.iter().copied().map(Some).collect();
            let s = schedule(&projected, jobs, limit);
            prop_assert!(s.end_s <= limit);
            prop_assert_eq!(s.starts.len(), p.len());
            // one worker: the started runs run back to back
            let one = schedule(&projected, 1, limit);
            let total: f64 = p.iter().zip(&one.starts).filter(|(_, &s)| s).map(|(p, _)| p).sum();
            prop_assert!((total - one.end_s).abs() < 1e-9 && total <= limit);
        }

        /// A budget that holds every run back to back starts them all; as many workers as runs
        /// start exactly the runs that fit on their own.
        #[test]
        fn enough_time_starts_all_and_enough_workers_start_each_that_fits(
            p in proptest::collection::vec(0.0f64..100.0, 0..30),
            jobs in 1usize..5,
            limit in 0.0f64..500.0,
        ) {
            let projected: Vec<Option<f64>> = p.iter().copied().map(Some).collect();
            let all = schedule(&projected, jobs, p.iter().sum::<f64>() + 1.0);
            prop_assert!(all.starts.iter().all(|&s| s));
            let wide = schedule(&projected, p.len().max(1), limit);
            for (i, &x) in p.iter().enumerate() {
                prop_assert_eq!(wide.starts[i], x <= limit);
            }
        }

        #[test]
        fn any_string_parses_or_is_refused_without_panicking(s in "\\PC{0,12}") {
            let _ = s.parse::<TimeLimit>();
        }
    }
}
