//! The retry engine: a state machine with no I/O.
//!
//! The host (the wasm-bindgen layer) performs every effect: it POSTs, reads and
//! writes storage, sleeps and wakes. The engine decides. Time (`now`, in ms since
//! the Unix epoch) and randomness (`r` in `[0, 1)`) come in as arguments, so every
//! decision is reproducible in a test.
//!
//! Methods come in three groups, after quinn-proto:
//! - export path: [`Engine::start_export`] then [`Engine::on_export_attempt`] per
//!   attempt; when that says [`ExportStep::Persist`], [`Engine::reserve`] and then
//!   [`Engine::on_spool_written`] / [`Engine::on_spool_failed`] (or, where the spool
//!   lives in another engine, [`Engine::on_handed_off`]);
//! - drain: [`Engine::poll_drain`] says what to send next, [`Engine::on_drain_result`]
//!   takes each outcome; [`Engine::next_wakeup`] says when the host must wake it;
//! - output and getters: [`Engine::poll_log`], [`Engine::stats`].
//!
//! # Decisions
//!
//! - Export: one attempt, then one immediate retry after `immediate_retry_delay_ms`
//!   (at once if the first attempt timed out); then the spool. A `Retry-After` longer
//!   than the immediate delay skips the immediate retry: the drain honours it.
//! - While the drain is waiting out a failure, a new export is a *probe*: a single
//!   attempt, spooled at once if it fails. If it succeeds the backend is back: the
//!   backoff resets and the drain is due now.
//! - The spool holds at most `max_spool_bytes` of payload; an export that would
//!   exceed it is dropped with an error.
//! - Drain: oldest first; after a failure one record at a time, waiting
//!   `delay * (1 + r)`; after a success up to `drain_concurrency` at once, with no wait.

use std::collections::VecDeque;

use crate::backoff::Backoff;
use crate::classify::{classify, Attempt, Verdict};
use crate::log::{Kind, LogLine, RateLimitedLog};
use crate::policy::Policy;
use crate::spool::{self, Entry, Leftovers, RecordId, SpoolIndex};

/// How an export ended. Every export ends in exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Stored durably; the drain delivers it later.
    Spooled,
    /// The backend refused it with a non-retryable status.
    Rejected { status: u16 },
    /// Neither delivered nor stored (spool full, storage failed, exporter shut down).
    Dropped,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Spooled => "spooled",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Dropped => "dropped",
        }
    }
}

/// The state of one export in flight.
#[derive(Clone, Debug)]
pub struct ExportJob {
    attempts: u32,
    max_attempts: u32,
    last_status: Option<u16>,
}

impl ExportJob {
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The status of the last attempt that got one.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// True when this export is a single probe attempt (the drain is backing off).
    pub fn is_probe(&self) -> bool {
        self.max_attempts == 1
    }
}

/// What the host does next for an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportStep {
    /// Attempt again after waiting this long.
    RetryAfter { ms: u64 },
    /// Store the payload: [`Engine::reserve`] an id, write the record, report back.
    Persist,
    /// The export has ended.
    Finished(Outcome),
}

/// A record handed to the host to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub id: RecordId,
    pub entry: Entry,
    epoch: u64,
}

impl Ticket {
    /// The storage keys of the record, head first.
    pub fn keys(&self) -> Vec<String> {
        spool::keys(self.id, &self.entry)
    }
}

/// What the drain should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainStep {
    /// Read this record and send it.
    Send(Ticket),
    /// Nothing more to start now; wait for the sends in flight.
    Busy,
    /// This pass has used its send budget; records are due, so wake again now.
    BudgetSpent,
    /// Nothing to send before this time.
    WaitUntil(u64),
    /// The spool is empty (of records not in flight) and nothing is in flight.
    Idle,
}

/// How a drain send of one record went.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// The record was read intact and POSTed.
    Attempted(Attempt),
    /// The record failed its checks (or a chunk is missing); `reason` says why.
    Corrupt { reason: String },
    /// The head was gone: another exporter on the same storage took it.
    Gone,
    /// Storage failed while reading it; the record stays.
    ReadFailed { error: String },
}

/// Figures for `stats()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub queued_bytes: u64,
    pub delivered: u64,
    pub spooled: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub in_flight: u64,
    /// Sends started by the current (or last) drain pass.
    pub pass_sends: u64,
    pub next_attempt_at: Option<u64>,
    pub delay_ms: u64,
}

#[derive(Clone, Debug, Default)]
struct Counters {
    delivered: u64,
    spooled: u64,
    rejected: u64,
    dropped: u64,
    corrupt: u64,
}

/// The retry engine. See the module documentation.
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    instance: u32,
    spool: SpoolIndex,
    backoff: Backoff,
    log: RateLimitedLog,
    lines: VecDeque<LogLine>,
    counters: Counters,
    in_flight: u32,
    /// Sends started in the current drain pass (see [`Policy::drain_budget`]).
    pass_sends: u32,
    /// The last thing the backend did was take a payload: drain at full concurrency.
    healthy: bool,
    /// A probe was delivered while the drain waited out a failure: a spool kept
    /// elsewhere must hear that the backend is back.
    recovered: bool,
}

impl Engine {
    /// A new engine with an empty spool; `instance` tells its records apart from
    /// other exporters' on the same storage (draw it at random).
    pub fn new(policy: Policy, instance: u32) -> Self {
        Engine {
            backoff: Backoff::new(&policy),
            policy,
            instance,
            spool: SpoolIndex::default(),
            log: RateLimitedLog::default(),
            lines: VecDeque::new(),
            counters: Counters::default(),
            in_flight: 0,
            pass_sends: 0,
            healthy: true,
            recovered: false,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    // ---- recovery -------------------------------------------------------------

    /// Takes the storage listing of a previous run. Returns the keys to delete
    /// (chunks left by an interrupted write or delete). Due records drain at once.
    pub fn recover<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>, now: u64) -> Vec<String> {
        let (index, Leftovers { orphans, strays }) = SpoolIndex::recover(keys);
        self.spool = index;
        if !strays.is_empty() {
            let shown: Vec<_> = strays.iter().take(3).map(String::as_str).collect();
            self.emit(Kind::Storage, now, || {
                format!("Spool storage holds {} key(s) that are not export-retry records (left alone): {}", strays.len(), shown.join(", "))
            });
        }
        if !self.spool.is_empty() {
            self.emit_retrying(now);
        }
        orphans
    }

    // ---- export path ----------------------------------------------------------

    /// Starts an export at `now`.
    pub fn start_export(&mut self, now: u64) -> ExportJob {
        let probe = self.backoff.is_waiting(now);
        ExportJob { attempts: 0, max_attempts: if probe { 1 } else { 2 }, last_status: None }
    }

    /// Takes the result of an export attempt and says what to do next.
    pub fn on_export_attempt(&mut self, job: &mut ExportJob, attempt: &Attempt, now: u64, r: f64) -> ExportStep {
        job.attempts += 1;
        if let Attempt::Status { status, .. } = attempt {
            job.last_status = Some(*status);
        }
        match classify(attempt, now) {
            Verdict::Delivered => {
                self.counters.delivered += 1;
                self.recovered |= job.is_probe();
                self.on_backend_took_something();
                ExportStep::Finished(Outcome::Delivered)
            }
            Verdict::Rejected { status } => {
                self.counters.rejected += 1;
                self.emit(Kind::Rejected, now, || {
                    format!("Export rejected by the backend with status {status}; it is not retried")
                });
                ExportStep::Finished(Outcome::Rejected { status })
            }
            Verdict::Retryable { retry_after_ms, timed_out } => {
                let immediate = self.policy.immediate_retry_delay_ms;
                let backend_wants_longer = retry_after_ms.is_some_and(|ms| ms > immediate);
                if job.attempts < job.max_attempts && !backend_wants_longer {
                    return ExportStep::RetryAfter { ms: if timed_out { 0 } else { immediate } };
                }
                self.healthy = false;
                if self.backoff.is_waiting(now) {
                    if let Some(ms) = retry_after_ms {
                        self.backoff.hold_until(now.saturating_add(ms.min(self.policy.max_retry_after_ms)));
                    }
                } else {
                    let epoch = self.backoff.epoch();
                    self.backoff.on_failure(&self.policy, now, epoch, retry_after_ms, r);
                }
                ExportStep::Persist
            }
        }
    }

    /// Reserves an id and room for a record of `payload_len` payload bytes. A full
    /// spool drops the export (and says so): `Err(Outcome::Dropped)`.
    pub fn reserve(&mut self, payload_len: u64, now: u64) -> Result<RecordId, Outcome> {
        let (count, bytes) = self.spool.held();
        if bytes.saturating_add(payload_len) > self.policy.max_spool_bytes {
            self.counters.dropped += 1;
            self.emit(Kind::Dropping, now, || {
                format!("Already retrying {count} failed exports ({bytes} bytes), dropping an export")
            });
            return Err(Outcome::Dropped);
        }
        Ok(self.spool.reserve(self.instance, payload_len, now))
    }

    /// The record for `id` is durably stored in `pieces` pieces.
    pub fn on_spool_written(&mut self, id: RecordId, payload_len: u64, pieces: u32, now: u64) -> Outcome {
        self.spool.settle(id, payload_len, Some(pieces));
        self.counters.spooled += 1;
        self.emit_retrying(now);
        Outcome::Spooled
    }

    /// Writing the record for `id` failed: the export is dropped, and said so.
    pub fn on_spool_failed(&mut self, id: RecordId, payload_len: u64, error: &str, now: u64) -> Outcome {
        self.spool.settle(id, payload_len, None);
        self.counters.dropped += 1;
        self.emit(Kind::Storage, now, || format!("Could not spool a failed export ({error}); dropping it"));
        Outcome::Dropped
    }

    /// The payload went to a spool kept by another engine (a Durable Object), which
    /// answered `outcome` (spooled or dropped; it logged a drop itself).
    pub fn on_handed_off(&mut self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Spooled => self.counters.spooled += 1,
            _ => self.counters.dropped += 1,
        }
        outcome
    }

    /// The hand-off to a remote spool failed: the export is dropped, and said so.
    pub fn on_handoff_failed(&mut self, error: &str, now: u64) -> Outcome {
        self.counters.dropped += 1;
        self.emit(Kind::Storage, now, || format!("Could not hand a failed export to the spool ({error}); dropping it"));
        Outcome::Dropped
    }

    /// A payload that failed in another engine (a request isolate) arrives to be
    /// spooled here: that failure starts the backoff, unless it is already running,
    /// so the drain does not retry at once what just failed twice.
    pub fn on_failed_elsewhere(&mut self, now: u64, r: f64) {
        self.healthy = false;
        if !self.backoff.is_waiting(now) {
            let epoch = self.backoff.epoch();
            self.backoff.on_failure(&self.policy, now, epoch, None, r);
        }
    }

    /// True once after a probe was delivered: where the spool lives in another
    /// engine, the host tells it ([`Engine::on_backend_recovered`]).
    pub fn take_recovered(&mut self) -> bool {
        std::mem::take(&mut self.recovered)
    }

    /// Another engine saw the backend take a payload: stop waiting, drain now.
    pub fn on_backend_recovered(&mut self) {
        self.on_backend_took_something();
    }

    /// An export that is not attempted at all (the exporter is shut down).
    pub fn drop_export(&mut self, reason: &str, now: u64) -> Outcome {
        self.counters.dropped += 1;
        self.emit(Kind::Dropping, now, || format!("Dropping an export: {reason}"));
        Outcome::Dropped
    }

    // ---- drain ----------------------------------------------------------------

    /// Starts a drain pass: its send budget is full again.
    pub fn begin_pass(&mut self) {
        self.pass_sends = 0;
    }

    /// What the drain should do now. A `Send` marks the record as in flight; its
    /// result must come back through [`Engine::on_drain_result`].
    pub fn poll_drain(&mut self, now: u64) -> DrainStep {
        if !self.spool.has_waiting() {
            return if self.in_flight > 0 { DrainStep::Busy } else { DrainStep::Idle };
        }
        if self.backoff.is_waiting(now) {
            return match self.in_flight {
                0 => DrainStep::WaitUntil(self.backoff.next_attempt_at().unwrap_or(now)),
                _ => DrainStep::Busy,
            };
        }
        let budget = self.policy.drain_budget;
        if budget > 0 && self.pass_sends >= budget {
            return if self.in_flight > 0 { DrainStep::Busy } else { DrainStep::BudgetSpent };
        }
        let limit = if self.healthy { self.policy.drain_concurrency } else { 1 };
        if self.in_flight >= limit {
            return DrainStep::Busy;
        }
        match self.spool.take_oldest() {
            Some((id, entry)) => {
                self.in_flight += 1;
                self.pass_sends += 1;
                DrainStep::Send(Ticket { id, entry, epoch: self.backoff.epoch() })
            }
            None => DrainStep::Busy,
        }
    }

    /// Takes how sending a record went. Returns the storage keys to delete (head
    /// first): the record is delivered, rejected or corrupt, and out of the index.
    pub fn on_drain_result(&mut self, ticket: &Ticket, sent: &Sent, now: u64, r: f64) -> Vec<String> {
        self.in_flight -= 1;
        let id = ticket.id;
        match sent {
            Sent::Attempted(attempt) => match classify(attempt, now) {
                Verdict::Delivered => {
                    self.counters.delivered += 1;
                    self.on_backend_took_something();
                    self.remove(ticket)
                }
                Verdict::Rejected { status } => {
                    self.counters.rejected += 1;
                    self.emit(Kind::Rejected, now, || {
                        format!("Spooled export rejected by the backend with status {status}; removed from the spool")
                    });
                    self.remove(ticket)
                }
                Verdict::Retryable { retry_after_ms, .. } => {
                    self.spool.release(id);
                    self.healthy = false;
                    self.backoff.on_failure(&self.policy, now, ticket.epoch, retry_after_ms, r);
                    self.emit_retrying(now);
                    Vec::new()
                }
            },
            Sent::Corrupt { reason } => {
                self.counters.corrupt += 1;
                let head = spool::key(id, ticket.entry.payload_len, 0);
                self.emit(Kind::Corrupt, now, || format!("Removed a corrupt spooled record {head}: {reason}"));
                self.remove(ticket)
            }
            Sent::Gone => {
                self.spool.remove(id);
                Vec::new()
            }
            Sent::ReadFailed { error } => {
                self.spool.release(id);
                self.backoff.on_failure(&self.policy, now, ticket.epoch, None, r);
                self.emit(Kind::Storage, now, || format!("Spool storage failed to read a record: {error}"));
                Vec::new()
            }
        }
    }

    /// Deleting `key` failed. It still occupies storage, so its `payload_len`
    /// bytes keep counting against capacity (0 for a key not in the index), and
    /// after a restart it is sent again (at-least-once), which is worth a line.
    /// The host stops deleting that record's other pieces.
    pub fn on_delete_failed(&mut self, key: &str, payload_len: u64, error: &str, now: u64) {
        self.spool.note_undeleted(payload_len);
        self.emit(Kind::Storage, now, || {
            format!("Spool storage failed to delete {key} ({error}); it may be delivered again after a restart")
        });
    }

    /// When the host must next wake the drain; `None` when there is nothing to send.
    pub fn next_wakeup(&self, now: u64) -> Option<u64> {
        if !self.spool.has_waiting() {
            return None;
        }
        Some(self.backoff.next_attempt_at().map_or(now, |at| at.max(now)))
    }

    // ---- output and getters ---------------------------------------------------

    /// The next line for the host's logger.
    pub fn poll_log(&mut self) -> Option<LogLine> {
        self.lines.pop_front()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: self.spool.len() as u64,
            queued_bytes: self.spool.queued_bytes(),
            delivered: c.delivered,
            spooled: c.spooled,
            rejected: c.rejected,
            dropped: c.dropped,
            corrupt: c.corrupt,
            in_flight: self.in_flight as u64,
            pass_sends: self.pass_sends as u64,
            next_attempt_at: self.backoff.next_attempt_at(),
            delay_ms: self.backoff.delay_ms(),
        }
    }

    /// The records in the spool, oldest first (for tests and diagnostics).
    pub fn spool(&self) -> &SpoolIndex {
        &self.spool
    }

    // ---- internals ------------------------------------------------------------

    fn on_backend_took_something(&mut self) {
        self.healthy = true;
        self.backoff.on_success(&self.policy);
    }

    fn remove(&mut self, ticket: &Ticket) -> Vec<String> {
        self.spool.remove(ticket.id);
        ticket.keys()
    }

    fn emit_retrying(&mut self, now: u64) {
        let (n, bytes) = (self.spool.len(), self.spool.queued_bytes());
        self.emit(Kind::Retrying, now, || format!("Currently retrying {n} failed export(s) ({bytes} bytes)"));
    }

    fn emit(&mut self, kind: Kind, now: u64, message: impl FnOnce() -> String) {
        if let Some(line) = self.log.line(kind, now, self.policy.log_interval_ms, message) {
            self.lines.push_back(line);
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
