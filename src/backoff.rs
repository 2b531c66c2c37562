//! The drain's backoff: exponential delay with proportional jitter.
//!
//! After a retryable failure the next attempt waits `delay * (1 + r)` with `r`
//! drawn from `[0, 1)`, so the wait lies in `[delay, 2 * delay)`; `delay` then
//! doubles up to the cap. A `Retry-After` from the backend is honoured as the
//! minimum wait (capped by `max_retry_after_ms`). A success resets everything.
//! `r` comes from the caller: the core never draws random numbers itself.

use crate::policy::Policy;

#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    delay_ms: u64,
    next_attempt_at: Option<u64>,
    /// Bumped by every failure that moved the schedule, so that concurrent
    /// attempts failing together count as one failure, not several doublings.
    epoch: u64,
}

impl Backoff {
    pub fn new(policy: &Policy) -> Self {
        Backoff { delay_ms: policy.initial_delay_ms, next_attempt_at: None, epoch: 0 }
    }

    /// The delay the next failure will wait (before jitter).
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }

    /// When the next attempt may start; `None` when there is no failure to wait out.
    pub fn next_attempt_at(&self) -> Option<u64> {
        self.next_attempt_at
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// True while a failure's wait has not yet elapsed.
    pub fn is_waiting(&self, now: u64) -> bool {
        self.next_attempt_at.is_some_and(|at| at > now)
    }

    /// Records a retryable failure observed at `now` by an attempt that started in
    /// `epoch`. Returns the wait it imposed. A failure from an attempt that started
    /// before the latest failure only extends the wait for its `Retry-After`.
    pub fn on_failure(&mut self, policy: &Policy, now: u64, epoch: u64, retry_after_ms: Option<u64>, r: f64) -> u64 {
        let floor = retry_after_ms.map_or(0, |ms| ms.min(policy.max_retry_after_ms));
        if epoch != self.epoch {
            let at = now.saturating_add(floor).max(self.next_attempt_at.unwrap_or(now));
            self.next_attempt_at = Some(at);
            return at - now;
        }
        let r = if r.is_finite() { r.clamp(0.0, 1.0 - f64::EPSILON) } else { 0.0 };
        let jittered = (self.delay_ms as f64 * (1.0 + r)) as u64;
        let wait = jittered.max(floor);
        self.next_attempt_at = Some(now.saturating_add(wait));
        self.delay_ms = self.delay_ms.saturating_mul(2).min(policy.max_delay_ms);
        self.epoch += 1;
        wait
    }

    /// Extends the current wait to honour a `Retry-After` seen outside the drain.
    pub fn hold_until(&mut self, at: u64) {
        self.next_attempt_at = Some(self.next_attempt_at.map_or(at, |t| t.max(at)));
    }

    /// The backend took something: no more waiting, delay back to the start.
    pub fn on_success(&mut self, policy: &Policy) {
        self.delay_ms = policy.initial_delay_ms;
        if self.next_attempt_at.is_some() {
            self.next_attempt_at = None;
            self.epoch += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_to_the_cap_with_waits_in_d_to_2d() {
        let p = Policy::default();
        let mut b = Backoff::new(&p);
        let mut now = 0;
        let mut expected = 1_000;
        for (i, r) in [0.0, 0.5, 0.999, 0.25, 0.0, 0.75, 0.1, 0.9, 0.3, 0.6].iter().enumerate() {
            let wait = b.on_failure(&p, now, b.epoch(), None, *r);
            assert!(wait >= expected && wait < 2 * expected, "failure {i}: wait {wait} vs d {expected}");
            assert_eq!(b.next_attempt_at(), Some(now + wait));
            now += wait;
            expected = (expected * 2).min(128_000);
            assert_eq!(b.delay_ms(), expected);
        }
        assert_eq!(b.delay_ms(), 128_000, "capped");
    }

    #[test]
    fn success_resets() {
        let p = Policy::default();
        let mut b = Backoff::new(&p);
        b.on_failure(&p, 0, 0, None, 0.0);
        b.on_failure(&p, 0, 1, None, 0.0);
        assert!(b.is_waiting(1));
        b.on_success(&p);
        assert_eq!(b.delay_ms(), 1_000);
        assert_eq!(b.next_attempt_at(), None);
        assert!(!b.is_waiting(1));
    }

    #[test]
    fn retry_after_is_a_minimum_and_is_capped() {
        let p = Policy::default();
        let mut b = Backoff::new(&p);
        assert_eq!(b.on_failure(&p, 100, 0, Some(30_000), 0.5), 30_000);
        assert_eq!(b.on_failure(&p, 100, 1, Some(10), 0.0), 2_000, "short Retry-After: backoff wins");
        let year = 365 * 24 * 3_600_000;
        assert_eq!(b.on_failure(&p, 100, 2, Some(year), 0.0), p.max_retry_after_ms);
    }

    #[test]
    fn concurrent_failures_double_once() {
        let p = Policy::default();
        let mut b = Backoff::new(&p);
        let epoch = b.epoch();
        b.on_failure(&p, 0, epoch, None, 0.0);
        b.on_failure(&p, 5, epoch, None, 0.0);
        b.on_failure(&p, 9, epoch, None, 0.0);
        assert_eq!(b.delay_ms(), 2_000);
        assert_eq!(b.next_attempt_at(), Some(1_000));
        // A stale failure still honours its Retry-After.
        assert_eq!(b.on_failure(&p, 10, epoch, Some(5_000), 0.0), 5_000);
        assert_eq!(b.next_attempt_at(), Some(5_010));
        assert_eq!(b.delay_ms(), 2_000);
    }

    #[test]
    fn bad_random_input_cannot_break_the_bounds() {
        let p = Policy::default();
        for r in [f64::NAN, -3.0, 7.0, f64::INFINITY] {
            let mut b = Backoff::new(&p);
            let wait = b.on_failure(&p, 0, 0, None, r);
            assert!((1_000..2_000).contains(&wait), "r={r} wait={wait}");
        }
    }
}
