//! A progress line on stderr for long runs: one line per stage (`discovering…`, `querying
//! prometheus: 7 queries…`), redrawn in place with `\r`. Only when the caller enables it,
//! which the CLI does only when stderr is a terminal: CI logs and piped output never see it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    enabled: bool,
    drawn: AtomicBool,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            drawn: AtomicBool::new(false),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces the progress line with `message`.
    pub fn stage(&self, message: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{message}");
        let _ = err.flush();
        self.drawn.store(true, Ordering::Relaxed);
    }

    /// Erases the progress line (before the report or an error is printed).
    pub fn clear(&self) {
        if self.enabled && self.drawn.swap(false, Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
