//! Rate-limiting a driver's warnings: a flood of connections failing the
//! same way (a misconfigured fleet, a scanner) must not flood the log. Pure
//! bookkeeping with the time passed in, shared by every driver's logging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many warnings of one kind are logged one by one per window.
pub const WARNINGS_PER_WINDOW: u32 = 10;
/// The window over which warnings of one kind are counted.
pub const WARNING_WINDOW: Duration = Duration::from_secs(60);

/// What to do with one warning ([`WarningLimiter::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it, after saying how many of its kind were suppressed in the
    /// window that just ended (when that is not zero).
    Log {
        /// Warnings of this kind suppressed in the previous window.
        suppressed_before: u64,
    },
    /// Over the limit: log it at a quieter level only.
    Suppress,
}

/// Limits warnings to [`WARNINGS_PER_WINDOW`] per kind per
/// [`WARNING_WINDOW`]. A driver keeps one per server (behind a lock if its
/// connections run on several threads) and asks it before each warning
/// that a flood could repeat.
#[derive(Debug, Default)]
pub struct WarningLimiter {
    kinds: HashMap<&'static str, Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl WarningLimiter {
    /// Whether a warning of `kind` (a fixed name, such as a close reason's
    /// kind) at `now` is logged. Call once per warning, before logging it.
    pub fn admit(&mut self, kind: &'static str, now: Instant) -> Admit {
        let window = self.kinds.entry(kind).or_insert(Window {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        let mut suppressed_before = 0;
        if now.saturating_duration_since(window.started) >= WARNING_WINDOW {
            suppressed_before = window.suppressed;
            *window = Window {
                started: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if window.logged < WARNINGS_PER_WINDOW {
            window.logged += 1;
            Admit::Log { suppressed_before }
        } else {
            window.suppressed += 1;
            Admit::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_per_kind_and_window() {
        let mut limiter = WarningLimiter::default();
        let start = Instant::now();
        let mut logged = |at: Instant, kind| matches!(limiter.admit(kind, at), Admit::Log { .. });
        let first: Vec<bool> = (0..15).map(|_| logged(start, "truncated")).collect();
        assert_eq!(
            first.iter().filter(|logged| **logged).count(),
            WARNINGS_PER_WINDOW as usize
        );
        // Another kind has its own allowance.
        assert!(logged(start, "handshake_timeout"));
        // Within the window, still suppressed.
        assert!(!logged(start + WARNING_WINDOW / 2, "truncated"));
        // The next window logs again and reports the six suppressed.
        assert_eq!(
            limiter.admit("truncated", start + WARNING_WINDOW),
            Admit::Log {
                suppressed_before: 16 - u64::from(WARNINGS_PER_WINDOW)
            }
        );
    }
}
