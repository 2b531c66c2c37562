//! Engine tests: every decision of the behaviour contract, with an injected clock
//! and injected random numbers.

use super::*;
use crate::log::Level;

const T0: u64 = 1_700_000_000_000;

fn status(status: u16) -> Attempt {
    Attempt::Status { status, retry_after: None }
}

fn retry_after(status: u16, value: &str) -> Attempt {
    Attempt::Status { status, retry_after: Some(value.into()) }
}

fn logs(engine: &mut Engine) -> Vec<LogLine> {
    std::iter::from_fn(|| engine.poll_log()).collect()
}

/// Runs an export whose attempts produce `attempts` in order; writes succeed.
fn export(engine: &mut Engine, len: u64, now: u64, attempts: &[Attempt]) -> (Outcome, Vec<ExportStep>) {
    let mut job = engine.start_export(now);
    let mut steps = Vec::new();
    for attempt in attempts {
        let step = engine.on_export_attempt(&mut job, attempt, now, 0.5);
        steps.push(step);
        match step {
            ExportStep::RetryAfter { .. } => continue,
            ExportStep::Persist => {
                let outcome = match engine.reserve(len, now) {
                    Ok(id) => engine.on_spool_written(id, len, 1, now),
                    Err(outcome) => outcome,
                };
                return (outcome, steps);
            }
            ExportStep::Finished(outcome) => return (outcome, steps),
        }
    }
    panic!("export did not finish: {steps:?}");
}

fn spool_one(engine: &mut Engine, len: u64, now: u64) {
    let (outcome, _) = export(engine, len, now, &[status(503), status(503)]);
    assert_eq!(outcome, Outcome::Spooled);
}

fn take_send(engine: &mut Engine, now: u64) -> Ticket {
    match engine.poll_drain(now) {
        DrainStep::Send(t) => t,
        other => panic!("expected a send at {now}, got {other:?}"),
    }
}

#[test]
fn healthy_export_is_delivered_in_one_attempt() {
    let mut e = Engine::new(Policy::default(), 1);
    let (outcome, steps) = export(&mut e, 10, T0, &[status(200)]);
    assert_eq!(outcome, Outcome::Delivered);
    assert_eq!(steps.len(), 1);
    assert_eq!(e.stats().delivered, 1);
    assert_eq!(e.next_wakeup(T0), None);
}

#[test]
fn retryable_failure_is_retried_once_after_the_immediate_delay() {
    for failure in [status(503), status(500), status(408), status(429), Attempt::NetworkError] {
        let mut e = Engine::new(Policy::default(), 1);
        let (outcome, steps) = export(&mut e, 10, T0, &[failure.clone(), status(204)]);
        assert_eq!(outcome, Outcome::Delivered, "{failure:?}");
        assert_eq!(steps[0], ExportStep::RetryAfter { ms: 1_000 });
    }
}

#[test]
fn a_timed_out_attempt_is_retried_without_waiting() {
    let mut e = Engine::new(Policy::default(), 1);
    let (_, steps) = export(&mut e, 10, T0, &[Attempt::Timeout, status(200)]);
    assert_eq!(steps[0], ExportStep::RetryAfter { ms: 0 });
}

#[test]
fn two_failures_spool_the_export_and_schedule_the_drain_with_jitter() {
    let mut e = Engine::new(Policy::default(), 1);
    let (outcome, steps) = export(&mut e, 100, T0, &[status(503), Attempt::Timeout]);
    assert_eq!(outcome, Outcome::Spooled);
    assert_eq!(steps[1], ExportStep::Persist);
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.spooled), (1, 100, 1));
    // delay 1 s, r = 0.5: the first drain attempt is due 1.5 s later.
    assert_eq!(e.next_wakeup(T0), Some(T0 + 1_500));
    assert_eq!(e.poll_drain(T0 + 1_499), DrainStep::WaitUntil(T0 + 1_500));
    let lines = logs(&mut e);
    assert_eq!(lines, vec![LogLine { level: Level::Warn, message: "Currently retrying 1 failed export(s) (100 bytes)".into() }]);
}

#[test]
fn rejected_statuses_are_not_retried_and_are_logged_with_the_status() {
    for s in [400, 401, 403, 404, 413] {
        let mut e = Engine::new(Policy::default(), 1);
        let (outcome, steps) = export(&mut e, 10, T0, &[status(s)]);
        assert_eq!(outcome, Outcome::Rejected { status: s });
        assert_eq!(steps.len(), 1);
        let lines = logs(&mut e);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].level, Level::Error);
        assert!(lines[0].message.contains(&s.to_string()), "{lines:?}");
        assert_eq!(e.stats().rejected, 1);
    }
}

#[test]
fn a_long_retry_after_skips_the_immediate_retry_and_holds_the_drain() {
    let mut e = Engine::new(Policy::default(), 1);
    let (outcome, steps) = export(&mut e, 10, T0, &[retry_after(429, "30")]);
    assert_eq!(outcome, Outcome::Spooled);
    assert_eq!(steps.len(), 1);
    assert_eq!(e.next_wakeup(T0), Some(T0 + 30_000));
}

#[test]
fn while_backing_off_a_new_export_is_a_single_probe() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    let due = e.next_wakeup(T0).unwrap();

    let job = e.start_export(T0 + 100);
    assert!(job.is_probe());
    let (outcome, steps) = export(&mut e, 10, T0 + 100, &[status(503)]);
    assert_eq!(outcome, Outcome::Spooled, "a failed probe is spooled at once");
    assert_eq!(steps.len(), 1);
    assert_eq!(e.next_wakeup(T0 + 100), Some(due), "a failed probe does not push the drain back");
    assert_eq!(e.stats().delay_ms, 2_000, "nor double the delay");

    let (outcome, _) = export(&mut e, 10, T0 + 200, &[status(200)]);
    assert_eq!(outcome, Outcome::Delivered);
    assert_eq!(e.next_wakeup(T0 + 200), Some(T0 + 200), "a delivered probe makes the drain due now");
    assert_eq!(e.stats().delay_ms, 1_000);
    assert!(!e.start_export(T0 + 200).is_probe());
}

#[test]
fn a_failed_probe_honours_retry_after() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    export(&mut e, 10, T0 + 100, &[retry_after(503, "60")]);
    assert_eq!(e.next_wakeup(T0 + 100), Some(T0 + 60_100));
}

#[test]
fn a_full_spool_drops_new_failed_exports_with_the_contract_error() {
    let mut policy = Policy::default();
    policy.max_spool_bytes = 250;
    let mut e = Engine::new(policy, 1);
    spool_one(&mut e, 100, T0);
    spool_one(&mut e, 100, T0 + 1);
    logs(&mut e);
    let (outcome, _) = export(&mut e, 100, T0 + 2, &[status(503)]);
    assert_eq!(outcome, Outcome::Dropped);
    let lines = logs(&mut e);
    assert_eq!(
        lines,
        vec![LogLine { level: Level::Error, message: "Already retrying 2 failed exports (200 bytes), dropping an export".into() }],
        "the error is logged even though a warning was just logged"
    );
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.dropped), (2, 200, 1));
    // A smaller export still fits.
    let (outcome, _) = export(&mut e, 50, T0 + 3, &[status(503)]);
    assert_eq!(outcome, Outcome::Spooled);
}

#[test]
fn the_warning_appears_at_most_once_per_interval() {
    let mut e = Engine::new(Policy::default(), 1);
    let mut warnings = 0;
    for i in 0..200u64 {
        spool_one(&mut e, 1, T0 + i * 1_000);
        warnings += logs(&mut e).iter().filter(|l| l.level == Level::Warn).count();
    }
    // 200 s of spooling, one warning per 60 s: at 0, 60, 120 and 180 s.
    assert_eq!(warnings, 4);
}

#[test]
fn drain_sends_oldest_first_and_deletes_head_first() {
    let mut e = Engine::new(Policy::default(), 1);
    for i in 0..3 {
        spool_one(&mut e, 10 + i, T0 + i);
    }
    let order: Vec<_> = e.spool().iter().map(|(id, _)| *id).collect();
    let now = e.next_wakeup(T0 + 3).unwrap();
    let first = take_send(&mut e, now);
    assert_eq!(first.id, order[0]);
    assert_eq!(e.poll_drain(now), DrainStep::Busy, "after a failure, one at a time");
    let keys = e.on_drain_result(&first, &Sent::Attempted(status(200)), now, 0.0);
    assert_eq!(keys, first.keys());
    assert!(keys[0].starts_with('r') && keys[0].split('.').count() == 3, "head first: {keys:?}");
    // After a success: the rest at once, no wait, up to the concurrency.
    let a = take_send(&mut e, now);
    let b = take_send(&mut e, now);
    assert_eq!((a.id, b.id), (order[1], order[2]));
    assert_eq!(e.poll_drain(now), DrainStep::Busy);
    e.on_drain_result(&a, &Sent::Attempted(status(200)), now, 0.0);
    e.on_drain_result(&b, &Sent::Attempted(status(200)), now, 0.0);
    assert_eq!(e.poll_drain(now), DrainStep::Idle);
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.delivered, s.in_flight), (0, 0, 3, 0));
    assert_eq!(e.next_wakeup(now), None);
}

#[test]
fn a_backlog_drains_at_the_backends_speed() {
    let mut e = Engine::new(Policy::default(), 1);
    for i in 0..1_000 {
        spool_one(&mut e, 10, T0 + i);
    }
    let now = e.next_wakeup(T0 + 1_000).unwrap();
    let mut delivered = 0;
    let mut max_parallel = 0;
    loop {
        let mut batch = Vec::new();
        while let DrainStep::Send(t) = e.poll_drain(now) {
            batch.push(t);
        }
        if batch.is_empty() {
            assert_eq!(e.poll_drain(now), DrainStep::Idle);
            break;
        }
        max_parallel = max_parallel.max(batch.len());
        for t in batch {
            e.on_drain_result(&t, &Sent::Attempted(status(200)), now, 0.0);
            delivered += 1;
        }
    }
    assert_eq!(delivered, 1_000, "all delivered without the clock moving");
    assert_eq!(max_parallel, 4);
}

#[test]
fn drain_delays_double_within_d_to_2d_up_to_the_cap_and_reset_on_success() {
    let mut e = Engine::new(Policy::default(), 1);
    let randoms = [0.0, 0.99, 0.5, 0.25, 0.75, 0.1, 0.9, 0.33, 0.66, 0.01];
    spool_one(&mut e, 10, T0);
    let mut now = e.next_wakeup(T0).unwrap();
    let mut d = 2_000; // the export's own failure already waited 1 s * (1 + r)
    for r in randoms {
        let t = take_send(&mut e, now);
        e.on_drain_result(&t, &Sent::Attempted(status(503)), now, r);
        let due = e.next_wakeup(now).unwrap();
        let wait = due - now;
        assert!(wait >= d && wait < 2 * d, "wait {wait} not in [{d}, {})", 2 * d);
        assert_eq!(e.poll_drain(due - 1), DrainStep::WaitUntil(due));
        now = due;
        d = (d * 2).min(128_000);
    }
    assert_eq!(e.stats().delay_ms, 128_000);
    let t = take_send(&mut e, now);
    e.on_drain_result(&t, &Sent::Attempted(status(200)), now, 0.0);
    assert_eq!(e.stats().delay_ms, 1_000);
    assert_eq!(e.stats().next_attempt_at, None);
}

#[test]
fn drain_honours_retry_after_as_a_minimum() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    let now = e.next_wakeup(T0).unwrap();
    let t = take_send(&mut e, now);
    e.on_drain_result(&t, &Sent::Attempted(retry_after(429, "45")), now, 0.0);
    assert_eq!(e.next_wakeup(now), Some(now + 45_000));
    let t = take_send(&mut e, now + 45_000);
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now + 45_000 + 90_000));
    e.on_drain_result(&t, &Sent::Attempted(retry_after(503, &date)), now + 45_000, 0.0);
    // HTTP dates have whole seconds.
    let due = e.next_wakeup(now + 45_000).unwrap();
    assert!((now + 134_000..=now + 135_000).contains(&due), "{}", due - now);
}

#[test]
fn a_rejected_spooled_record_is_removed_and_logged() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    logs(&mut e);
    let now = e.next_wakeup(T0).unwrap();
    let t = take_send(&mut e, now);
    let keys = e.on_drain_result(&t, &Sent::Attempted(status(413)), now, 0.0);
    assert_eq!(keys.len(), 1);
    let lines = logs(&mut e);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].level, Level::Error);
    assert!(lines[0].message.contains("413"));
    assert_eq!((e.stats().queued, e.stats().rejected), (0, 1));
}

#[test]
fn a_corrupt_record_is_removed_counted_and_logged() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    spool_one(&mut e, 20, T0);
    logs(&mut e);
    let now = e.next_wakeup(T0).unwrap();
    let t = take_send(&mut e, now);
    let keys = e.on_drain_result(&t, &Sent::Corrupt { reason: "payload checksum mismatch".into() }, now, 0.0);
    assert_eq!(keys, t.keys());
    let lines = logs(&mut e);
    assert!(lines[0].message.contains("corrupt") && lines[0].message.contains("checksum"), "{lines:?}");
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.corrupt), (1, 20, 1));
    assert!(matches!(e.poll_drain(now), DrainStep::Send(_)), "the drain goes on");
}

#[test]
fn a_storage_read_failure_keeps_the_record_and_backs_off() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    logs(&mut e);
    let now = e.next_wakeup(T0).unwrap();
    let t = take_send(&mut e, now);
    assert!(e.on_drain_result(&t, &Sent::ReadFailed { error: "EIO".into() }, now, 0.0).is_empty());
    assert_eq!(e.stats().queued, 1);
    assert!(e.next_wakeup(now).unwrap() > now);
    assert!(logs(&mut e)[0].message.contains("EIO"));
}

#[test]
fn a_record_taken_by_another_exporter_is_forgotten() {
    let mut e = Engine::new(Policy::default(), 1);
    spool_one(&mut e, 10, T0);
    let now = e.next_wakeup(T0).unwrap();
    let t = take_send(&mut e, now);
    assert!(e.on_drain_result(&t, &Sent::Gone, now, 0.0).is_empty());
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.corrupt, s.delivered), (0, 0, 0, 0));
}

#[test]
fn a_failed_spool_write_drops_the_export_and_frees_its_reservation() {
    let mut policy = Policy::default();
    policy.max_spool_bytes = 100;
    let mut e = Engine::new(policy, 1);
    let mut job = e.start_export(T0);
    e.on_export_attempt(&mut job, &status(503), T0, 0.0);
    assert_eq!(e.on_export_attempt(&mut job, &status(503), T0, 0.0), ExportStep::Persist);
    let id = e.reserve(100, T0).unwrap();
    assert_eq!(e.on_spool_failed(id, 100, "ENOSPC", T0), Outcome::Dropped);
    assert!(logs(&mut e).iter().any(|l| l.level == Level::Error && l.message.contains("ENOSPC")));
    let s = e.stats();
    assert_eq!((s.queued, s.queued_bytes, s.dropped), (0, 0, 1));
    // The bytes were released: the next export fits again.
    let (outcome, _) = export(&mut e, 100, T0 + 1, &[status(503)]);
    assert_eq!(outcome, Outcome::Spooled);
}

#[test]
fn reservations_count_against_capacity_while_writes_are_in_progress() {
    let mut policy = Policy::default();
    policy.max_spool_bytes = 150;
    let mut e = Engine::new(policy, 1);
    assert!(e.reserve(100, T0).is_ok());
    assert_eq!(e.reserve(100, T0), Err(Outcome::Dropped), "the first write is not finished, yet it counts");
}

#[test]
fn a_new_engine_on_the_same_keys_drains_at_once() {
    let mut e = Engine::new(Policy::default(), 1);
    for i in 0..3 {
        spool_one(&mut e, 10, T0 + i);
    }
    let keys: Vec<String> = e.spool().iter().flat_map(|(id, entry)| spool::keys(*id, entry)).collect();
    let mut restarted = Engine::new(Policy::default(), 2);
    let later = T0 + 3_600_000;
    assert!(restarted.recover(keys.iter().map(String::as_str), later).is_empty());
    assert_eq!(restarted.stats().queued, 3);
    assert_eq!(restarted.stats().queued_bytes, 30);
    assert_eq!(restarted.next_wakeup(later), Some(later), "no new export needed");
    assert!(logs(&mut restarted)[0].message.starts_with("Currently retrying 3 failed export(s)"));
    let t = take_send(&mut restarted, later);
    assert_eq!(t.keys()[0], keys[0]);
}

#[test]
fn concurrent_drain_failures_count_as_one() {
    let mut e = Engine::new(Policy::default(), 1);
    for i in 0..4 {
        spool_one(&mut e, 10, T0 + i);
    }
    let now = e.next_wakeup(T0 + 4).unwrap();
    let t = take_send(&mut e, now);
    e.on_drain_result(&t, &Sent::Attempted(status(200)), now, 0.0);
    let sends: Vec<_> = std::iter::from_fn(|| match e.poll_drain(now) {
        DrainStep::Send(t) => Some(t),
        _ => None,
    })
    .collect();
    assert_eq!(sends.len(), 3);
    for t in &sends {
        e.on_drain_result(t, &Sent::Attempted(Attempt::NetworkError), now + 5, 0.0);
    }
    assert_eq!(e.stats().delay_ms, 2_000, "three failures of one round double the delay once");
    assert_eq!(e.next_wakeup(now + 5), Some(now + 5 + 1_000));
    assert_eq!(e.stats().queued, 3);
}

#[test]
fn stray_keys_are_reported_and_orphan_chunks_returned_for_deletion() {
    let mut e = Engine::new(Policy::default(), 1);
    let orphan = spool::key(RecordId { seq: 5, instance: 5 }, 10, 1);
    let deleted = e.recover(["notes.txt", orphan.as_str()], T0);
    assert_eq!(deleted, vec![orphan]);
    let lines = logs(&mut e);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].message.contains("notes.txt"));
    assert_eq!(e.next_wakeup(T0), None);
}

#[test]
fn every_export_ends_in_exactly_one_outcome() {
    // A small exhaustive walk: every pair of attempt results, spool writes that
    // succeed or fail, and the counters always add up to the number of exports.
    let results = [status(200), status(503), status(400), Attempt::NetworkError, Attempt::Timeout, retry_after(429, "5")];
    let mut e = Engine::new(Policy::default(), 1);
    let mut exports = 0;
    for (i, a) in results.iter().enumerate() {
        for (j, b) in results.iter().enumerate() {
            for write_ok in [true, false] {
                exports += 1;
                let now = T0 + (i * 100 + j * 10) as u64;
                let mut job = e.start_export(now);
                let mut next = [a, b].into_iter();
                let outcome = loop {
                    match e.on_export_attempt(&mut job, next.next().unwrap(), now, 0.3) {
                        ExportStep::RetryAfter { .. } => continue,
                        ExportStep::Persist => match e.reserve(10, now) {
                            Ok(id) if write_ok => break e.on_spool_written(id, 10, 1, now),
                            Ok(id) => break e.on_spool_failed(id, 10, "EIO", now),
                            Err(o) => break o,
                        },
                        ExportStep::Finished(o) => break o,
                    }
                };
                assert!(job.attempts() >= 1 && job.attempts() <= 2, "{outcome:?}");
            }
        }
    }
    let s = e.stats();
    assert_eq!(s.delivered + s.spooled + s.rejected + s.dropped, exports);
    assert_eq!(s.queued, s.spooled);
}

#[test]
fn a_drain_pass_stops_at_its_budget_and_asks_to_be_woken_at_once() {
    let mut policy = Policy::default();
    policy.drain_budget = 40;
    let mut e = Engine::new(policy, 1);
    for i in 0..100 {
        spool_one(&mut e, 10, T0 + i);
    }
    let mut now = e.next_wakeup(T0 + 100).unwrap();
    let mut passes = Vec::new();
    while e.stats().queued > 0 {
        e.begin_pass();
        let mut sent = 0;
        loop {
            match e.poll_drain(now) {
                DrainStep::Send(t) => {
                    e.on_drain_result(&t, &Sent::Attempted(status(200)), now, 0.0);
                    sent += 1;
                }
                DrainStep::BudgetSpent => {
                    assert_eq!(e.next_wakeup(now), Some(now), "records are due: wake again at once");
                    break;
                }
                DrainStep::Idle => break,
                other => panic!("{other:?}"),
            }
        }
        passes.push(sent);
        now += 1;
    }
    assert_eq!(passes, vec![40, 40, 20]);
}

#[test]
fn a_delivered_probe_is_reported_once_for_a_remote_spool() {
    let mut e = Engine::new(Policy::default(), 1);
    let (_, _) = export(&mut e, 10, T0, &[status(503), status(503)]);
    assert!(!e.take_recovered(), "failures are not a recovery");
    export(&mut e, 10, T0 + 1, &[status(200)]);
    assert!(e.take_recovered());
    assert!(!e.take_recovered(), "reported once");
    export(&mut e, 10, T0 + 2, &[status(200)]);
    assert!(!e.take_recovered(), "a healthy export is not a recovery");
}

#[test]
fn a_remote_recovery_makes_the_drain_due_now() {
    let mut e = Engine::new(Policy::default(), 1);
    for i in 0..3 {
        spool_one(&mut e, 10, T0 + i);
    }
    let now = T0 + 10;
    assert!(e.next_wakeup(now).unwrap() > now);
    e.on_backend_recovered();
    assert_eq!(e.next_wakeup(now), Some(now));
    assert_eq!(e.stats().delay_ms, 1_000);
}

#[test]
fn a_payload_failed_elsewhere_starts_the_backoff_once() {
    let mut e = Engine::new(Policy::default(), 1);
    e.on_failed_elsewhere(T0, 0.5);
    let id = e.reserve(10, T0).unwrap();
    e.on_spool_written(id, 10, 1, T0);
    assert_eq!(e.next_wakeup(T0), Some(T0 + 1_500), "not at once: it just failed twice");
    e.on_failed_elsewhere(T0 + 100, 0.5);
    assert_eq!(e.next_wakeup(T0 + 100), Some(T0 + 1_500), "a running backoff is not pushed back");
    assert_eq!(e.stats().delay_ms, 2_000);
}
