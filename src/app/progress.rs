//! What `reproduce-paper run` shows while it trains: a live display on a terminal (runs done of
//! all, the current model and variant, its epoch and validation score, an ETA), plain lines on
//! standard error otherwise (a log file or a pipe: one line when a run starts and ends, an epoch
//! line at most every 30 s), nothing with `--quiet`.

use crate::experiments::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Live bars (standard error is a terminal).
    Live,
    /// Plain lines on standard error.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// `Quiet` with `quiet`, else `Live` on a terminal and `Lines` otherwise.
    pub(crate) fn detect(quiet: bool) -> Mode {
        use std::io::IsTerminal;
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Lines
        }
    }
}

/// The ETA of `remaining` runs when `trained` runs took `elapsed` (`None` before the first ends).
pub(crate) fn eta(elapsed: Duration, trained: usize, remaining: usize) -> Option<Duration> {
    (trained > 0).then(|| elapsed.mul_f64(remaining as f64 / trained as f64))
}

/// `1 h 05 min`, `12 min`, `40 s`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min", (s + 30) / 60)
    } else {
        format!("{s} s")
    }
}

/// The display of one `run`.
#[derive(Debug)]
pub(crate) struct Display {
    mode: Mode,
    metric: &'static str,
    start: Instant,
    /// Runs found in the results file at the start (not trained now).
    resumed: usize,
    /// Runs trained (ended) now.
    trained: usize,
    last_line: Instant,
    current: String,
    _multi: Option<MultiProgress>,
    grid: ProgressBar,
    epoch: ProgressBar,
}

impl Display {
    /// A display for runs whose validation metric is `metric` (`MAE`, `accuracy`).
    pub(crate) fn new(mode: Mode, metric: &'static str) -> Display {
        let (multi, grid, epoch) = if mode == Mode::Live {
            let multi = MultiProgress::new();
            let grid = multi.add(ProgressBar::new(0));
            grid.set_style(
                ProgressStyle::with_template("{prefix:>5} [{bar:30}] {pos}/{len} runs {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            grid.set_prefix("grid");
            let epoch = multi.add(ProgressBar::new_spinner());
            (Some(multi), grid, epoch)
        } else {
            (None, ProgressBar::hidden(), ProgressBar::hidden())
        };
        Display {
            mode,
            metric,
            start: Instant::now(),
            resumed: 0,
            trained: 0,
            last_line: Instant::now(),
            current: String::new(),
            _multi: multi,
            grid,
            epoch,
        }
    }

    fn eta_text(&self, done: usize, total: usize) -> String {
        match eta(
            self.start.elapsed(),
            self.trained,
            total.saturating_sub(done),
        ) {
            Some(d) if done < total => format!("ETA {}", human(d)),
            _ if done < total => "ETA after the first run".into(),
            _ => "done".into(),
        }
    }

    /// A run starts, ends, or was found in the results file.
    pub(crate) fn run(&mut self, p: &Progress<'_>) {
        let c = p.config;
        let name = format!(
            "{} {} seed {} b{} lr{:e}",
            c.model.kind().name(),
            c.variant.name(),
            c.seed,
            c.batch_size,
            c.lr
        );
        if p.resumed {
            self.resumed = p.done;
            self.grid.set_length(p.total as u64);
            self.grid.set_position(p.done as u64);
            return;
        }
        if let Some(rec) = p.finished {
            self.trained += 1;
            let r = &rec.result;
            let outcome = match &r.failure {
                Some(f) => format!("failed ({f})"),
                None => format!(
                    "best epoch {} of {}, valid {} {:.4}",
                    r.best_epoch, r.epochs, self.metric, r.valid_score
                ),
            };
            let eta = self.eta_text(p.done, p.total);
            match self.mode {
                Mode::Live => {
                    self.grid.set_position(p.done as u64);
                    self.grid.set_message(format!("· {eta} · {}", self.current));
                }
                Mode::Lines => eprintln!(
                    "[{}/{}] {name}: {outcome} in {}; {eta}",
                    p.done,
                    p.total,
                    human(Duration::from_secs_f64(r.wall_s.max(0.0)))
                ),
                Mode::Quiet => {}
            }
            return;
        }
        self.current = name.clone();
        self.last_line = Instant::now();
        let eta = self.eta_text(p.done, p.total);
        match self.mode {
            Mode::Live => {
                self.grid.set_length(p.total as u64);
                self.grid.set_position(p.done as u64);
                self.grid.set_message(format!("· {eta} · {name}"));
                self.epoch.set_message(format!("{name}: epoch 1"));
                self.epoch.tick();
            }
            Mode::Lines => {
                if p.done == self.resumed && self.trained == 0 && self.resumed > 0 {
                    eprintln!(
                        "reproduce-paper: {} of {} runs already in the results file (resumed)",
                        self.resumed, p.total
                    );
                }
                eprintln!("[{}/{}] {name}: training", p.done + 1, p.total);
            }
            Mode::Quiet => {}
        }
    }

    /// An epoch of the current run ended with validation score `score`.
    pub(crate) fn epoch(&mut self, epoch: usize, score: f64) {
        let text = format!(
            "{}: epoch {epoch}, valid {} {score:.4}",
            self.current, self.metric
        );
        match self.mode {
            Mode::Live => {
                self.epoch.set_message(text);
                self.epoch.tick();
            }
            Mode::Lines => {
                if self.last_line.elapsed() >= Duration::from_secs(30) {
                    self.last_line = Instant::now();
                    eprintln!("  {text}");
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Clears the live bars.
    pub(crate) fn finish(&self) {
        self.grid.finish_and_clear();
        self.epoch.finish_and_clear();
    }
}
