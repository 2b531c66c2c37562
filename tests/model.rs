//! Model-based test of the retry engine (proptest state machine).
//!
//! Random sequences of exports, attempt outcomes (success, every retryable kind,
//! rejections, Retry-After), storage faults, corrupt and vanished records, time
//! advances, drain passes with concurrent sends, restarts on the same storage and
//! capacity pressure drive the real [`Engine`] against a plain model: a storage
//! map and the fate of every export. After every step:
//!
//! - every export is delivered, still queued (its record in storage), or counted as
//!   rejected, dropped or corrupt, exactly once (a record whose delete failed may
//!   be delivered again after a restart: at-least-once, counted as a duplicate);
//! - queued bytes equal the sum of the queued records' payloads, and never exceed
//!   the capacity;
//! - a drain wait after a failure lies in `[d, 2d)` (or is the Retry-After, capped),
//!   and `d` never exceeds the cap;
//! - the drain sends the oldest record not already in flight.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};

use export_retry::classify::Attempt;
use export_retry::engine::{DrainStep, Engine, ExportStep, Outcome, Sent, Ticket};
use export_retry::policy::Policy;
use export_retry::spool::{parse_key, RecordId};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Reply {
    Ok,
    Status(u16),
    RetryAfter(u16, u32),
    Network,
    Timeout,
}

impl Reply {
    fn attempt(&self) -> Attempt {
        match self {
            Reply::Ok => Attempt::Status { status: 200, retry_after: None },
            Reply::Status(s) => Attempt::Status { status: *s, retry_after: None },
            Reply::RetryAfter(s, secs) => Attempt::Status { status: *s, retry_after: Some(secs.to_string()) },
            Reply::Network => Attempt::NetworkError,
            Reply::Timeout => Attempt::Timeout,
        }
    }
}

#[derive(Clone, Debug)]
enum Fate {
    Reply(Reply),
    Corrupt,
    Gone,
    ReadFailed,
}

#[derive(Clone, Debug)]
enum Op {
    Export { len: u64, replies: Vec<Reply>, write_ok: bool },
    Advance(u64),
    Drain { fates: Vec<Fate>, delete_ok: bool, r: f64 },
    Restart,
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => Just(Reply::Ok),
        2 => prop_oneof![Just(500u16), Just(502), Just(503), Just(504), Just(408), Just(429)].prop_map(Reply::Status),
        1 => prop_oneof![Just(400u16), Just(401), Just(404), Just(413)].prop_map(Reply::Status),
        1 => (prop_oneof![Just(429u16), Just(503)], 0u32..400).prop_map(|(s, secs)| Reply::RetryAfter(s, secs)),
        2 => Just(Reply::Network),
        1 => Just(Reply::Timeout),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        12 => reply().prop_map(Fate::Reply),
        1 => Just(Fate::Corrupt),
        1 => Just(Fate::Gone),
        1 => Just(Fate::ReadFailed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u64..400, prop::collection::vec(reply(), 2), prop::bool::weighted(0.9))
            .prop_map(|(len, replies, write_ok)| Op::Export { len, replies, write_ok }),
        3 => prop_oneof![0u64..2_000, 0u64..300_000].prop_map(Op::Advance),
        4 => (prop::collection::vec(fate(), 1..8), prop::bool::weighted(0.95), 0.0f64..1.0)
            .prop_map(|(fates, delete_ok, r)| Op::Drain { fates, delete_ok, r }),
        1 => Just(Op::Restart),
    ]
}

/// What became of each export, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fated {
    Delivered,
    Queued,
    Rejected,
    Dropped,
    Corrupt,
}

struct World {
    policy: Policy,
    engine: Engine,
    now: u64,
    /// Storage: head key -> the export whose record it is.
    storage: BTreeMap<String, usize>,
    fates: Vec<Fated>,
    duplicates: usize,
    instance: u32,
}

impl World {
    fn new(max_spool_bytes: u64) -> World {
        let mut policy = Policy::default();
        policy.max_spool_bytes = max_spool_bytes;
        policy.max_retry_after_ms = 120_000;
        World {
            engine: Engine::new(policy.clone(), 1),
            policy,
            now: 1_700_000_000_000,
            storage: BTreeMap::new(),
            fates: Vec::new(),
            duplicates: 0,
            instance: 1,
        }
    }

    fn export(&mut self, len: u64, replies: &[Reply], write_ok: bool) {
        let id = self.fates.len();
        self.fates.push(Fated::Queued);
        let mut job = self.engine.start_export(self.now);
        let mut replies = replies.iter().chain(std::iter::repeat(&Reply::Network));
        let outcome = loop {
            let reply = replies.next().unwrap();
            match self.engine.on_export_attempt(&mut job, &reply.attempt(), self.now, 0.5) {
                ExportStep::RetryAfter { ms } => {
                    assert!(job.attempts() < 2, "at most one immediate retry");
                    self.now += ms;
                }
                ExportStep::Finished(outcome) => break outcome,
                ExportStep::Persist => match self.engine.reserve(len, self.now) {
                    Err(outcome) => break outcome,
                    Ok(record) if write_ok => {
                        let key = export_retry::spool::key(record, len, 0);
                        self.storage.insert(key, id);
                        break self.engine.on_spool_written(record, len, 1, self.now);
                    }
                    Ok(record) => break self.engine.on_spool_failed(record, len, "EIO", self.now),
                },
            }
        };
        assert!(job.attempts() >= 1 && job.attempts() <= 2);
        self.fates[id] = match outcome {
            Outcome::Delivered => Fated::Delivered,
            Outcome::Spooled => Fated::Queued,
            Outcome::Rejected { .. } => Fated::Rejected,
            Outcome::Dropped => Fated::Dropped,
        };
    }

    /// The oldest queued record that is not in flight, by the model's storage.
    fn oldest_waiting(&self, in_flight: &BTreeSet<RecordId>) -> Option<RecordId> {
        self.storage
            .keys()
            .filter_map(|k| parse_key(k))
            .map(|p| p.id)
            .filter(|id| !in_flight.contains(id) && self.engine.spool().iter().any(|(e, _)| e == id))
            .min()
    }

    fn drain(&mut self, fates: &[Fate], delete_ok: bool, r: f64) {
        self.engine.begin_pass();
        let mut in_flight: Vec<Ticket> = Vec::new();
        let mut ids = BTreeSet::new();
        loop {
            let expected = self.oldest_waiting(&ids);
            match self.engine.poll_drain(self.now) {
                DrainStep::Send(ticket) => {
                    assert_eq!(Some(ticket.id), expected, "the drain sends the oldest waiting record");
                    ids.insert(ticket.id);
                    in_flight.push(ticket);
                    if in_flight.len() >= fates.len() {
                        break;
                    }
                }
                DrainStep::WaitUntil(at) => {
                    assert!(at > self.now);
                    break;
                }
                DrainStep::Busy | DrainStep::Idle | DrainStep::BudgetSpent => break,
            }
        }
        let alone = in_flight.len() == 1;
        // Results come back in reverse order of sending: concurrency in miniature.
        for (ticket, fate) in in_flight.iter().rev().zip(fates) {
            let d = self.engine.stats().delay_ms;
            let head = ticket.keys()[0].clone();
            let export = self.storage.get(&head).copied();
            let sent = match fate {
                Fate::Reply(reply) => Sent::Attempted(reply.attempt()),
                Fate::Corrupt => Sent::Corrupt { reason: "payload checksum mismatch".into() },
                Fate::Gone => Sent::Gone,
                Fate::ReadFailed => Sent::ReadFailed { error: "EIO".into() },
            };
            if matches!(fate, Fate::Gone) {
                // Another exporter took it: in the model, it delivered it.
                self.storage.remove(&head);
                self.fates[export.unwrap()] = Fated::Delivered;
            }
            let doomed = self.engine.on_drain_result(ticket, &sent, self.now, r);
            if let Fate::Reply(reply) = fate {
                let retryable = matches!(reply, Reply::Network | Reply::Timeout | Reply::RetryAfter(..))
                    || matches!(reply, Reply::Status(s) if *s == 408 || *s == 429 || *s >= 500);
                if retryable && alone {
                    let wait = self.engine.next_wakeup(self.now).unwrap() - self.now;
                    let floor = match reply {
                        Reply::RetryAfter(_, secs) => (*secs as u64 * 1000).min(self.policy.max_retry_after_ms),
                        _ => 0,
                    };
                    assert!(
                        (wait >= d && wait < 2 * d) || (wait == floor && floor >= d),
                        "wait {wait} for d {d} (Retry-After floor {floor})"
                    );
                }
            }
            assert!(self.engine.stats().delay_ms <= self.policy.max_delay_ms);
            if !doomed.is_empty() {
                let export = export.expect("a record the engine removes is in storage");
                self.fates[export] = match fate {
                    Fate::Reply(Reply::Ok) => Fated::Delivered,
                    Fate::Corrupt => Fated::Corrupt,
                    _ => Fated::Rejected,
                };
                if delete_ok {
                    for key in &doomed {
                        self.storage.remove(key);
                    }
                } else {
                    self.engine.on_delete_failed(&doomed[0], ticket.entry.payload_len, "EIO", self.now);
                }
            }
        }
    }

    fn restart(&mut self) {
        self.instance += 1;
        self.engine = Engine::new(self.policy.clone(), self.instance);
        let keys: Vec<String> = self.storage.keys().cloned().collect();
        let orphans = self.engine.recover(keys.iter().map(String::as_str), self.now);
        assert!(orphans.is_empty());
        // Records whose delete failed come back: the model now counts them queued
        // again (a second delivery is a duplicate, allowed by at-least-once).
        for export in self.storage.values() {
            if self.fates[*export] != Fated::Queued {
                self.duplicates += 1;
                self.fates[*export] = Fated::Queued;
            }
        }
    }

    fn check(&self) {
        let queued: Vec<usize> = self
            .engine
            .spool()
            .iter()
            .map(|(id, entry)| {
                let key = export_retry::spool::key(*id, entry.payload_len, 0);
                *self.storage.get(&key).unwrap_or_else(|| panic!("index entry {key} not in storage"))
            })
            .collect();
        for export in &queued {
            assert_eq!(self.fates[*export], Fated::Queued, "export {export} is queued");
        }
        let still_queued = self.fates.iter().filter(|f| **f == Fated::Queued).count();
        assert_eq!(still_queued, queued.len(), "every queued export has its record in the index");
        let stats = self.engine.stats();
        let bytes: u64 = self.engine.spool().iter().map(|(_, e)| e.payload_len).sum();
        assert_eq!(stats.queued_bytes, bytes);
        assert_eq!(stats.queued as usize, queued.len());
        let stored: u64 = self.storage.keys().filter_map(|k| parse_key(k)).map(|p| p.payload_len).sum();
        assert!(stored <= self.policy.max_spool_bytes, "storage never holds more than the capacity ({stored} bytes)");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_model(capacity in prop_oneof![Just(1_000u64), Just(5_000), Just(1 << 20)],
                                ops in prop::collection::vec(op(), 1..150)) {
        let mut world = World::new(capacity);
        for op in &ops {
            match op {
                Op::Export { len, replies, write_ok } => world.export(*len, replies, *write_ok),
                Op::Advance(ms) => world.now += ms,
                Op::Drain { fates, delete_ok, r } => world.drain(fates, *delete_ok, *r),
                Op::Restart => world.restart(),
            }
            world.check();
        }
        // Finally the backend is healthy: everything still queued is delivered.
        for _ in 0..10_000 {
            if world.engine.stats().queued == 0 {
                break;
            }
            world.now = world.engine.next_wakeup(world.now).unwrap_or(world.now).max(world.now);
            world.drain(&vec![Fate::Reply(Reply::Ok); 4], true, 0.5);
            world.check();
        }
        prop_assert_eq!(world.engine.stats().queued, 0);
        prop_assert!(world.fates.iter().all(|f| *f != Fated::Queued));
    }
}
