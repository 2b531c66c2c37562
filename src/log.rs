//! Rate-limited log messages.
//!
//! Each kind of message has its own limiter, so a recent warning never hides an
//! error. A limited message appears at most once per `log_interval_ms`; what was
//! held back is counted, and the next message of that kind says how many.
//! The engine queues [`LogLine`]s; the host prints them through its logger.

/// Severity, mapped to the logger's `warn` and `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warn,
    Error,
}

/// One line for the host's logger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// The kinds of message, each limited on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Currently retrying N failed export(s) (B bytes)`.
    Retrying,
    /// `Already retrying N failed exports (B bytes), dropping an export`.
    Dropping,
    /// The backend rejected an export (non-retryable status).
    Rejected,
    /// A spooled record failed its checks and was removed.
    Corrupt,
    /// The storage adapter failed.
    Storage,
}

const KINDS: usize = 5;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn level(self) -> Level {
        match self {
            Kind::Retrying => Level::Warn,
            _ => Level::Error,
        }
    }

    /// The two messages of the behaviour contract keep their exact text.
    fn reports_suppressed(self) -> bool {
        !matches!(self, Kind::Retrying | Kind::Dropping)
    }
}

#[derive(Clone, Debug, Default)]
struct Limiter {
    last_at: Option<u64>,
    suppressed: u64,
}

/// One limiter per [`Kind`].
#[derive(Clone, Debug, Default)]
pub struct RateLimitedLog {
    limiters: [Limiter; KINDS],
}

impl RateLimitedLog {
    /// Returns the line to print now, or `None` if this kind spoke within the interval.
    /// `message` is only built when the line will be printed.
    pub fn line(&mut self, kind: Kind, now: u64, interval_ms: u64, message: impl FnOnce() -> String) -> Option<LogLine> {
        let limiter = &mut self.limiters[kind.index()];
        if limiter.last_at.is_some_and(|last| now.saturating_sub(last) < interval_ms) {
            limiter.suppressed += 1;
            return None;
        }
        limiter.last_at = Some(now);
        let mut message = message();
        let held_back = std::mem::take(&mut limiter.suppressed);
        if held_back > 0 && kind.reports_suppressed() {
            message.push_str(&format!(" ({held_back} similar message(s) suppressed)"));
        }
        Some(LogLine { level: kind.level(), message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_once_per_interval() {
        let mut log = RateLimitedLog::default();
        let msg = || "m".to_string();
        assert!(log.line(Kind::Retrying, 0, 60_000, msg).is_some());
        assert!(log.line(Kind::Retrying, 59_999, 60_000, msg).is_none());
        assert!(log.line(Kind::Retrying, 60_000, 60_000, msg).is_some());
    }

    #[test]
    fn kinds_are_limited_independently() {
        let mut log = RateLimitedLog::default();
        let warn = log.line(Kind::Retrying, 0, 60_000, || "w".into()).unwrap();
        assert_eq!(warn.level, Level::Warn);
        let err = log.line(Kind::Dropping, 1, 60_000, || "e".into()).unwrap();
        assert_eq!(err.level, Level::Error, "a recent warning does not hide an error");
    }

    #[test]
    fn suppressed_count_is_reported_except_on_contract_messages() {
        let mut log = RateLimitedLog::default();
        log.line(Kind::Rejected, 0, 10, || "x".into());
        log.line(Kind::Rejected, 1, 10, || "x".into());
        log.line(Kind::Rejected, 2, 10, || "x".into());
        let line = log.line(Kind::Rejected, 10, 10, || "x".into()).unwrap();
        assert_eq!(line.message, "x (2 similar message(s) suppressed)");

        log.line(Kind::Dropping, 0, 10, || "d".into());
        log.line(Kind::Dropping, 1, 10, || "d".into());
        assert_eq!(log.line(Kind::Dropping, 10, 10, || "d".into()).unwrap().message, "d");
    }

    #[test]
    fn zero_interval_logs_everything() {
        let mut log = RateLimitedLog::default();
        for t in [0, 0, 0] {
            assert!(log.line(Kind::Corrupt, t, 0, || "c".into()).is_some());
        }
    }
}
