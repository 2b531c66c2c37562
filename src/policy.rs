//! The retry policy: every tunable number, its default, and its validation.
//!
//! Defaults equal the Logfire Python SDK's disk retryer (the seed). Each one is
//! written once, in [`Policy::default`], and every option is set by its public
//! (JavaScript) name through [`Policy::set`], so an error always names the option.

use core::fmt;

/// The numbers that drive the export path, the spool and the drain.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Abort one POST after this long (`timeoutMs`).
    pub timeout_ms: u64,
    /// Wait between the first attempt and the single immediate retry (`immediateRetryDelayMs`).
    pub immediate_retry_delay_ms: u64,
    /// The drain's first backoff delay; it doubles after each retryable failure (`initialDelayMs`).
    pub initial_delay_ms: u64,
    /// The cap on the doubling delay (`maxDelayMs`).
    pub max_delay_ms: u64,
    /// Capacity of the spool in payload bytes (`maxSpoolBytes`).
    pub max_spool_bytes: u64,
    /// Each rate-limited log message appears at most once per interval (`logIntervalMs`).
    pub log_interval_ms: u64,
    /// Entries sent at once by the drain while the backend is healthy (`drainConcurrency`).
    pub drain_concurrency: u32,
    /// A `Retry-After` longer than this is capped to it (`maxRetryAfterMs`).
    pub max_retry_after_ms: u64,
    /// Records sent per drain pass at most, 0 for no limit (`drainBudget`): a
    /// Workers alarm must stay within its subrequest limit.
    pub drain_budget: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout_ms: 10_000,
            immediate_retry_delay_ms: 1_000,
            initial_delay_ms: 1_000,
            max_delay_ms: 128_000,
            max_spool_bytes: 512 * 1024 * 1024,
            log_interval_ms: 60_000,
            drain_concurrency: 4,
            max_retry_after_ms: 15 * 60_000,
            drain_budget: 0,
        }
    }
}

/// A bad option value, naming the option as users spell it.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    pub option: String,
    pub problem: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "export-retry: option `{}` {}", self.option, self.problem)
    }
}

impl std::error::Error for OptionError {}

impl OptionError {
    pub fn new(option: &str, problem: impl Into<String>) -> Self {
        OptionError { option: option.to_string(), problem: problem.into() }
    }
}

/// The numeric options, by their public names.
pub const NUMERIC_OPTIONS: [&str; 9] = [
    "timeoutMs",
    "immediateRetryDelayMs",
    "initialDelayMs",
    "maxDelayMs",
    "maxSpoolBytes",
    "logIntervalMs",
    "drainConcurrency",
    "maxRetryAfterMs",
    "drainBudget",
];

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl Policy {
    /// Sets one numeric option from a JavaScript number. The error does not
    /// repeat the value: the caller shows it as its runtime prints numbers.
    pub fn set(&mut self, option: &str, value: f64) -> Result<(), OptionError> {
        let whole = whole_number(option, value)?;
        match option {
            "timeoutMs" => self.timeout_ms = positive(option, whole)?,
            "immediateRetryDelayMs" => self.immediate_retry_delay_ms = whole,
            "initialDelayMs" => self.initial_delay_ms = positive(option, whole)?,
            "maxDelayMs" => self.max_delay_ms = positive(option, whole)?,
            "maxSpoolBytes" => self.max_spool_bytes = whole,
            "logIntervalMs" => self.log_interval_ms = whole,
            "drainConcurrency" => {
                let n = positive(option, whole)?;
                self.drain_concurrency = u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= 256)
                    .ok_or_else(|| OptionError::new(option, "must be at most 256"))?;
            }
            "maxRetryAfterMs" => self.max_retry_after_ms = whole,
            "drainBudget" => {
                self.drain_budget = u32::try_from(whole)
                    .map_err(|_| OptionError::new(option, format!("must be at most {}", u32::MAX)))?;
            }
            _ => return Err(OptionError::new(option, "is not an option of export-retry")),
        }
        Ok(())
    }

    /// Sets the timeout from `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, as the
    /// OpenTelemetry exporter specification defines it).
    pub fn set_env_timeout(&mut self, raw: &str) -> Result<(), OptionError> {
        self.timeout_ms = crate::otlp_env::parse_timeout_ms("OTEL_EXPORTER_OTLP_TIMEOUT", raw)?;
        Ok(())
    }

    /// Checks the relations between options once they are all set.
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.initial_delay_ms > self.max_delay_ms {
            return Err(OptionError::new(
                "initialDelayMs",
                format!("({}) must not exceed maxDelayMs ({})", self.initial_delay_ms, self.max_delay_ms),
            ));
        }
        Ok(())
    }
}

fn whole_number(option: &str, value: f64) -> Result<u64, OptionError> {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 || value > MAX_SAFE_INTEGER {
        return Err(OptionError::new(option, "must be a whole number >= 0"));
    }
    Ok(value as u64)
}

fn positive(option: &str, value: u64) -> Result<u64, OptionError> {
    if value == 0 {
        return Err(OptionError::new(option, "must be greater than 0"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_values() {
        let p = Policy::default();
        assert_eq!(p.timeout_ms, 10_000);
        assert_eq!(p.immediate_retry_delay_ms, 1_000);
        assert_eq!(p.initial_delay_ms, 1_000);
        assert_eq!(p.max_delay_ms, 128_000);
        assert_eq!(p.max_spool_bytes, 536_870_912);
        assert_eq!(p.log_interval_ms, 60_000);
    }

    #[test]
    fn every_numeric_option_can_be_set_by_its_public_name() {
        let mut p = Policy::default();
        for (i, name) in NUMERIC_OPTIONS.iter().enumerate() {
            p.set(name, (i + 1) as f64).unwrap();
        }
        assert_eq!(p.timeout_ms, 1);
        assert_eq!(p.immediate_retry_delay_ms, 2);
        assert_eq!(p.initial_delay_ms, 3);
        assert_eq!(p.max_delay_ms, 4);
        assert_eq!(p.max_spool_bytes, 5);
        assert_eq!(p.log_interval_ms, 6);
        assert_eq!(p.drain_concurrency, 7);
        assert_eq!(p.max_retry_after_ms, 8);
        assert_eq!(p.drain_budget, 9);
    }

    #[test]
    fn bad_values_name_the_option() {
        let mut p = Policy::default();
        for (name, value) in [
            ("timeoutMs", -1.0),
            ("timeoutMs", 0.0),
            ("maxDelayMs", f64::NAN),
            ("maxSpoolBytes", 1.5),
            ("logIntervalMs", f64::INFINITY),
            ("drainConcurrency", 1000.0),
        ] {
            let err = p.set(name, value).unwrap_err();
            assert_eq!(err.option, name);
            assert!(err.to_string().contains(name), "{err}");
        }
        assert_eq!(p, Policy::default(), "a rejected value changes nothing");
    }

    #[test]
    fn unknown_option_is_an_error() {
        let err = Policy::default().set("timeoutMS", 5.0).unwrap_err();
        assert!(err.to_string().contains("timeoutMS"));
    }

    #[test]
    fn env_timeout_is_parsed_and_checked() {
        let mut p = Policy::default();
        p.set_env_timeout(" 2500 ").unwrap();
        assert_eq!(p.timeout_ms, 2500);
        let err = p.set_env_timeout("ten").unwrap_err();
        assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{err}");
        assert!(p.set_env_timeout("0").is_err());
    }

    #[test]
    fn initial_delay_must_not_exceed_the_cap() {
        let mut p = Policy::default();
        p.set("initialDelayMs", 200_000.0).unwrap();
        assert_eq!(p.validate().unwrap_err().option, "initialDelayMs");
    }
}
