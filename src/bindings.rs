//! The wasm-bindgen layer: drives the [`Engine`] with the JavaScript host.
//!
//! The host object (built by `js/exporter.js`) supplies `fetch`, the storage
//! adapter, the clock, sleeps, wake-ups and the logger. This layer performs what
//! the engine asks for and reports back; it makes no retry decision of its own.
//! Payload bytes stay in JavaScript (`Uint8Array` handles): they enter wasm memory
//! only in 64 KiB pieces to be checksummed when spooled and when read back.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{AbortSignal, Url};

use crate::classify::Attempt;
use crate::engine::{DrainStep, Engine, ExportJob, ExportStep, Outcome, Sent, Ticket};
use crate::log::Level;
use crate::otlp_env::{self, is_token_char};
use crate::policy::{OptionError, Policy, NUMERIC_OPTIONS};
use crate::record::{Checksum, RecordHeader, MAX_CONTENT_ENCODING_LEN, MAX_CONTENT_TYPE_LEN, MAX_HEADER_LEN, MAX_URL_LEN};
use crate::spool::{self, RecordId};

#[wasm_bindgen]
extern "C" {
    /// What the JavaScript shim supplies. Storage methods may return values or
    /// promises, and may throw: every result goes through `settle`.
    pub type Host;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &Host, url: &str, init: &Object) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = storageGet)]
    fn storage_get(this: &Host, key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = storagePut)]
    fn storage_put(this: &Host, key: &str, value: &Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = storageDelete)]
    fn storage_delete(this: &Host, key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = storageList)]
    fn storage_list(this: &Host, prefix: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, getter, js_name = maxValueBytes)]
    fn max_value_bytes(this: &Host) -> Option<f64>;
    #[wasm_bindgen(method)]
    fn now(this: &Host) -> f64;
    #[wasm_bindgen(method)]
    fn sleep(this: &Host, ms: f64) -> Promise;
    #[wasm_bindgen(method)]
    fn schedule(this: &Host, at_ms: f64);
    #[wasm_bindgen(method)]
    fn cancel(this: &Host);
    #[wasm_bindgen(method, catch)]
    fn warn(this: &Host, message: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn error(this: &Host, message: &str) -> Result<(), JsValue>;
    /// Present where the spool lives elsewhere (a Durable Object): stores a payload
    /// there (options: `contentType`, `contentEncoding`, `url`) and resolves to
    /// `"spooled"` or `"dropped"`.
    #[wasm_bindgen(method, catch)]
    fn handoff(this: &Host, body: &Uint8Array, options: &Object) -> Result<JsValue, JsValue>;
    /// With `handoff`: tells the remote spool that the backend took a probe.
    #[wasm_bindgen(method, catch)]
    fn recovered(this: &Host) -> Result<JsValue, JsValue>;

    /// A fetch `Response`, read structurally so any fetch implementation works.
    type FetchResponse;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn headers(this: &FetchResponse) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn body(this: &FetchResponse) -> JsValue;

    type HeaderLookup;
    #[wasm_bindgen(method, catch)]
    fn get(this: &HeaderLookup, name: &str) -> Result<JsValue, JsValue>;

    type Cancelable;
    #[wasm_bindgen(method, catch)]
    fn cancel(this: &Cancelable) -> Result<JsValue, JsValue>;
}

/// Options that are not numbers: read here, the numbers go to [`Policy::set`].
const OTHER_OPTIONS: [&str; 7] = ["endpoint", "headers", "storage", "fetch", "logger", "scheduler", "shards"];
const DEFAULT_CONTENT_TYPE: &str = "application/x-protobuf";
/// Payload bytes copied into wasm memory at a time to be checksummed.
const CHECKSUM_PIECE: u32 = 64 * 1024;

/// The retry exporter. Build it through `createExporter` in JavaScript.
#[wasm_bindgen]
pub struct Exporter {
    inner: Rc<Inner>,
}

struct Inner {
    host: Host,
    /// The host hands failed exports to a remote spool instead of writing them.
    hands_off: bool,
    engine: RefCell<Engine>,
    endpoint: String,
    origin: String,
    headers: Vec<(String, String)>,
    /// Exports not yet settled, for `forceFlush` (few at a time: a Vec is enough).
    exports: RefCell<Vec<(u64, Promise)>>,
    next_export: Cell<u64>,
    /// The drain pass under way; a second `drain()` joins it.
    drain: RefCell<Option<Promise>>,
    scheduled: Cell<Option<u64>>,
    closed: Cell<bool>,
    /// Jitter: a fast generator seeded once from the host's entropy (getrandom),
    /// not a system call per attempt.
    rng: RefCell<fastrand::Rng>,
    /// See [`Inner::request_headers`].
    headers_cache: RefCell<Option<(String, String, Object)>>,
}

/// `{ outcome, attempts, status? }`, what `export()` resolves to (built directly:
/// it is on every export's path).
fn export_result(outcome: Outcome, attempts: u32, status: Option<u16>) -> JsValue {
    let result = Object::new();
    set(&result, "outcome", &JsValue::from_str(outcome.name()));
    set(&result, "attempts", &JsValue::from(attempts));
    if let Some(status) = status {
        set(&result, "status", &JsValue::from(status));
    }
    result.into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsView {
    queued: u64,
    queued_bytes: u64,
    delivered: u64,
    spooled: u64,
    rejected: u64,
    dropped: u64,
    corrupt: u64,
    in_flight: u64,
    pass_sends: u64,
    next_attempt_at: Option<u64>,
    delay_ms: u64,
}

#[wasm_bindgen]
impl Exporter {
    /// Validates `options` (throwing a `TypeError` or `RangeError` that names the
    /// option) and builds an exporter on `host`. `env_timeout` is the value of
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, used when `timeoutMs` is not given.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, host: Host, env_timeout: Option<String>) -> Result<Exporter, JsValue> {
        install_panic_hook();
        let (policy, endpoint, origin, headers) = read_options(&options, env_timeout.as_deref())?;
        let engine = Engine::new(policy, random_seed() as u32);
        let hands_off = Reflect::get(&host, &"handoff".into()).is_ok_and(|f| f.is_function());
        Ok(Exporter {
            inner: Rc::new(Inner {
                host,
                hands_off,
                engine: RefCell::new(engine),
                endpoint,
                origin,
                headers,
                exports: RefCell::new(Vec::new()),
                next_export: Cell::new(0),
                drain: RefCell::new(None),
                scheduled: Cell::new(None),
                closed: Cell::new(false),
                rng: RefCell::new(fastrand::Rng::with_seed(random_seed())),
                headers_cache: RefCell::new(None),
            }),
        })
    }

    /// Recovers the backlog a previous exporter left in storage and schedules its
    /// drain. A storage that cannot be listed is logged; exports still work.
    pub fn open(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            match settle(inner.host.storage_list("")).await.and_then(|keys| string_array(&keys)) {
                Ok(keys) => {
                    let now = inner.now();
                    let orphans = inner.engine.borrow_mut().recover(keys.iter().map(String::as_str), now);
                    for key in orphans {
                        if let Err(e) = settle(inner.host.storage_delete(&key)).await {
                            inner.engine.borrow_mut().on_delete_failed(&key, 0, &describe(&e), now);
                        }
                    }
                }
                Err(e) => {
                    let _ = inner.host.error(&format!(
                        "Spool storage could not be listed ({}); records of earlier runs stay where they are",
                        describe(&e)
                    ));
                }
            }
            inner.flush_logs();
            inner.reschedule();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Exports one payload. Throws a `TypeError` at once for a bad argument;
    /// otherwise the promise always resolves to `{ outcome, attempts, status? }`.
    pub fn export(&self, body: JsValue, options: JsValue) -> Result<Promise, JsValue> {
        let body: Uint8Array = body
            .dyn_into()
            .map_err(|v| type_error(&format!("export(body): body must be a Uint8Array, got {}", type_name(&v))))?;
        let meta = read_meta(&options, "export")?;
        let inner = self.inner.clone();
        let id = inner.next_export.get();
        inner.next_export.set(id + 1);
        let promise = future_to_promise({
            let inner = inner.clone();
            async move {
                let (outcome, job) = run_export(&inner, &body, &meta).await;
                inner.exports.borrow_mut().retain(|(other, _)| *other != id);
                inner.flush_logs();
                inner.reschedule();
                let attempts = job.as_ref().map_or(0, ExportJob::attempts);
                Ok(export_result(outcome, attempts, job.as_ref().and_then(ExportJob::last_status)))
            }
        });
        inner.exports.borrow_mut().push((id, promise.clone()));
        Ok(promise)
    }

    /// Stores a payload that failed elsewhere (the request isolate of a Worker) in
    /// this exporter's spool, as if its own export had failed. Resolves to
    /// `{ outcome: "spooled" | "dropped" }` once it is durable or dropped.
    pub fn spool(&self, body: JsValue, options: JsValue) -> Result<Promise, JsValue> {
        let body: Uint8Array = body
            .dyn_into()
            .map_err(|v| type_error(&format!("spool(body): body must be a Uint8Array, got {}", type_name(&v))))?;
        let meta = read_meta(&options, "spool")?;
        let url = match Reflect::get(&options, &"url".into()).ok().and_then(|u| u.as_string()) {
            None => self.inner.endpoint.clone(),
            Some(url) if url.len() <= MAX_URL_LEN && origin_of(&url).is_some() => url,
            Some(url) => return Err(type_error(&format!("spool(body, options): url must be an absolute http(s) URL, got \"{url}\""))),
        };
        let inner = self.inner.clone();
        inner.engine.borrow_mut().on_failed_elsewhere(inner.now(), inner.random());
        Ok(future_to_promise(async move {
            let outcome = spool_locally(&inner, &body, &meta, &url).await;
            inner.flush_logs();
            inner.reschedule();
            Ok(export_result(outcome, 0, None))
        }))
    }

    /// Another exporter saw the backend take a payload (a delivered probe): stop
    /// waiting out the backoff and drain now.
    #[wasm_bindgen(js_name = backendRecovered)]
    pub fn backend_recovered(&self) {
        self.inner.engine.borrow_mut().on_backend_recovered();
        self.inner.reschedule();
    }

    /// One drain pass now: sends what is due, oldest first, and schedules the next
    /// wake-up. Never rejects. A call while a pass runs joins that pass.
    pub fn drain(&self) -> Promise {
        if let Some(running) = self.inner.drain.borrow().as_ref() {
            return running.clone();
        }
        let inner = self.inner.clone();
        let promise = future_to_promise(async move {
            run_drain(&inner).await;
            inner.drain.replace(None);
            inner.reschedule();
            Ok(JsValue::UNDEFINED)
        });
        self.inner.drain.replace(Some(promise.clone()));
        promise
    }

    /// What the host's wake-up calls: forgets the fired wake-up, then drains.
    pub fn wake(&self) -> Promise {
        self.inner.scheduled.set(None);
        self.drain()
    }

    /// Counters and the spool's state, as a plain object.
    pub fn stats(&self) -> JsValue {
        let s = self.inner.engine.borrow().stats();
        to_js(&StatsView {
            queued: s.queued,
            queued_bytes: s.queued_bytes,
            delivered: s.delivered,
            spooled: s.spooled,
            rejected: s.rejected,
            dropped: s.dropped,
            corrupt: s.corrupt,
            in_flight: s.in_flight,
            pass_sends: s.pass_sends,
            next_attempt_at: s.next_attempt_at,
            delay_ms: s.delay_ms,
        })
    }

    /// Resolves once every export started before the call has settled
    /// (delivered, spooled, rejected or dropped).
    #[wasm_bindgen(js_name = forceFlush)]
    pub fn force_flush(&self) -> Promise {
        let pending: Array = self.inner.exports.borrow().iter().map(|(_, p)| p.clone()).collect();
        future_to_promise(async move {
            let _ = JsFuture::from(Promise::all_settled(&pending)).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops wake-ups, settles exports under way and ends the drain pass after
    /// its current sends. Later exports are dropped (and logged).
    pub fn shutdown(&self) -> Promise {
        let inner = self.inner.clone();
        inner.closed.set(true);
        inner.host.cancel();
        inner.scheduled.set(None);
        let flushed = self.force_flush();
        let drain = inner.drain.borrow().clone();
        future_to_promise(async move {
            let _ = JsFuture::from(flushed).await;
            if let Some(drain) = drain {
                let _ = JsFuture::from(drain).await;
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Inner {
    /// A number in `[0, 1)` for the engine's jitter.
    fn random(&self) -> f64 {
        self.rng.borrow_mut().f64()
    }

    fn now(&self) -> u64 {
        let now = self.host.now();
        if now.is_finite() && now > 0.0 { now as u64 } else { 0 }
    }

    /// The request headers for a payload: configured ones only with `credentials`.
    /// The last set built with credentials is kept (fetch does not change it), so a
    /// steady stream of exports does not rebuild it from wasm strings every time.
    fn request_headers(&self, meta: &Meta, credentials: bool) -> Object {
        if credentials {
            if let Some((ct, ce, headers)) = self.headers_cache.borrow().as_ref() {
                if *ct == meta.content_type && *ce == meta.content_encoding {
                    return headers.clone();
                }
            }
        }
        let headers = Object::new();
        if credentials {
            for (name, value) in &self.headers {
                set(&headers, name, &JsValue::from_str(value));
            }
        }
        set(&headers, "content-type", &JsValue::from_str(&meta.content_type));
        if !meta.content_encoding.is_empty() {
            set(&headers, "content-encoding", &JsValue::from_str(&meta.content_encoding));
        }
        if credentials {
            let entry = (meta.content_type.clone(), meta.content_encoding.clone(), headers.clone());
            self.headers_cache.replace(Some(entry));
        }
        headers
    }

    /// Prints the engine's queued log lines through the host's logger.
    fn flush_logs(&self) {
        loop {
            let Some(line) = self.engine.borrow_mut().poll_log() else { break };
            let _ = match line.level {
                Level::Warn => self.host.warn(&line.message),
                Level::Error => self.host.error(&line.message),
            };
        }
    }

    /// Tells the host when to wake the drain next (or that nothing is due).
    fn reschedule(&self) {
        if self.closed.get() {
            return;
        }
        let next = self.engine.borrow().next_wakeup(self.now());
        if next == self.scheduled.get() {
            return;
        }
        self.scheduled.set(next);
        match next {
            Some(at) => self.host.schedule(at as f64),
            None => self.host.cancel(),
        }
    }

    /// One POST. Configured headers go only to the configured endpoint's origin.
    async fn post(&self, url: &str, meta: &Meta, body: &Uint8Array) -> Attempt {
        // The export path posts to the endpoint itself: no need to parse it again.
        let credentials = url == self.endpoint || origin_of(url).as_deref() == Some(self.origin.as_str());
        let headers = self.request_headers(meta, credentials);
        let init = Object::new();
        set(&init, "method", &JsValue::from_str("POST"));
        set(&init, "headers", &headers);
        set(&init, "body", body);
        set(&init, "redirect", &JsValue::from_str("manual"));
        let timeout = self.engine.borrow().policy().timeout_ms;
        set(&init, "signal", &AbortSignal::timeout_with_f64(timeout as f64));
        let response = match settle(self.host.fetch(url, &init)).await {
            Ok(response) => response.unchecked_into::<FetchResponse>(),
            Err(e) => {
                let name = Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string());
                return match name.as_deref() {
                    Some("TimeoutError" | "AbortError") => Attempt::Timeout,
                    _ => Attempt::NetworkError,
                };
            }
        };
        discard_body(&response).await;
        let Some(status) = response.status().as_f64().filter(|s| (100.0..=999.0).contains(s)) else {
            return Attempt::NetworkError;
        };
        let retry_after = response
            .headers()
            .dyn_into::<Object>()
            .ok()
            .and_then(|h| h.unchecked_into::<HeaderLookup>().get("retry-after").ok())
            .and_then(|v| v.as_string());
        Attempt::Status { status: status as u16, retry_after }
    }
}

async fn run_export(inner: &Rc<Inner>, body: &Uint8Array, meta: &Meta) -> (Outcome, Option<ExportJob>) {
    if inner.closed.get() {
        let outcome = inner.engine.borrow_mut().drop_export("the exporter is shut down", inner.now());
        return (outcome, None);
    }
    let mut job = inner.engine.borrow_mut().start_export(inner.now());
    loop {
        let attempt = inner.post(&inner.endpoint, meta, body).await;
        let step = inner.engine.borrow_mut().on_export_attempt(&mut job, &attempt, inner.now(), inner.random());
        inner.flush_logs();
        match step {
            ExportStep::RetryAfter { ms } => {
                if ms > 0 {
                    let _ = JsFuture::from(inner.host.sleep(ms as f64)).await;
                }
            }
            ExportStep::Finished(outcome) => {
                let recovered = inner.engine.borrow_mut().take_recovered();
                if recovered && inner.hands_off {
                    if let Err(e) = settle(inner.host.recovered()).await {
                        let _ = inner.host.error(&format!("Could not tell the spool that the backend is back: {}", describe(&e)));
                    }
                }
                return (outcome, Some(job));
            }
            ExportStep::Persist if inner.hands_off => return (hand_off(inner, body, meta).await, Some(job)),
            ExportStep::Persist => return (spool_locally(inner, body, meta, &inner.endpoint).await, Some(job)),
        }
    }
}

/// Hands a failed export to the spool that lives elsewhere.
async fn hand_off(inner: &Inner, body: &Uint8Array, meta: &Meta) -> Outcome {
    let options = Object::new();
    set(&options, "contentType", &JsValue::from_str(&meta.content_type));
    if !meta.content_encoding.is_empty() {
        set(&options, "contentEncoding", &JsValue::from_str(&meta.content_encoding));
    }
    set(&options, "url", &JsValue::from_str(&inner.endpoint));
    let answer = settle(inner.host.handoff(body, &options)).await;
    let mut engine = inner.engine.borrow_mut();
    match answer.map(|v| v.as_string()) {
        Ok(Some(name)) if name == "spooled" => engine.on_handed_off(Outcome::Spooled),
        Ok(Some(name)) if name == "dropped" => engine.on_handed_off(Outcome::Dropped),
        Ok(other) => engine.on_handoff_failed(&format!("unexpected answer {}", other.unwrap_or_default()), inner.now()),
        Err(e) => engine.on_handoff_failed(&describe(&e), inner.now()),
    }
}

/// Reserves room in this exporter's spool and writes the record.
async fn spool_locally(inner: &Inner, body: &Uint8Array, meta: &Meta, url: &str) -> Outcome {
    let len = body.length() as u64;
    let reserved = inner.engine.borrow_mut().reserve(len, inner.now());
    let id = match reserved {
        Ok(id) => id,
        Err(outcome) => return outcome,
    };
    let written = write_record(inner, id, body, meta, url).await;
    let mut engine = inner.engine.borrow_mut();
    match written {
        Ok(pieces) => engine.on_spool_written(id, len, pieces, inner.now()),
        Err(e) => engine.on_spool_failed(id, len, &e, inner.now()),
    }
}

/// Writes the record for `id` (chunks first, head last); returns its piece count.
async fn write_record(inner: &Inner, id: RecordId, body: &Uint8Array, meta: &Meta, url: &str) -> Result<u32, String> {
    let header = RecordHeader {
        created_at_ms: inner.now(),
        payload_len: body.length() as u64,
        payload_crc: checksum(body),
        content_type: meta.content_type.clone(),
        content_encoding: meta.content_encoding.clone(),
        url: url.to_string(),
    }
    .encode()
    .map_err(|e| e.to_string())?;
    let record = Uint8Array::new_with_length(header.len() as u32 + body.length());
    record.set(&Uint8Array::from(header.as_slice()), 0);
    record.set(body, header.len() as u32);

    let piece_len = match inner.host.max_value_bytes() {
        Some(max) if max.is_finite() && max >= 1.0 => (max as u32).max(MAX_HEADER_LEN as u32),
        _ => u32::MAX,
    };
    let pieces = record.length().div_ceil(piece_len).max(1);
    let len = body.length() as u64;
    let mut written: Vec<String> = Vec::new();
    for piece in (1..pieces).chain([0]) {
        let key = spool::key(id, len, piece);
        let start = piece * piece_len;
        let value = record.subarray(start, start.saturating_add(piece_len).min(record.length()));
        if let Err(e) = settle(inner.host.storage_put(&key, &value)).await {
            for key in written {
                let _ = settle(inner.host.storage_delete(&key)).await;
            }
            return Err(describe(&e));
        }
        written.push(key);
    }
    Ok(pieces)
}

async fn run_drain(inner: &Rc<Inner>) {
    inner.engine.borrow_mut().begin_pass();
    let mut running = FuturesUnordered::new();
    loop {
        while !inner.closed.get() {
            let step = inner.engine.borrow_mut().poll_drain(inner.now());
            match step {
                DrainStep::Send(ticket) => running.push(drain_record(inner.clone(), ticket)),
                DrainStep::Busy | DrainStep::BudgetSpent | DrainStep::WaitUntil(_) | DrainStep::Idle => break,
            }
        }
        if running.next().await.is_none() {
            break;
        }
    }
}

/// Reads, checks and sends one record, then deletes it if the engine says so.
async fn drain_record(inner: Rc<Inner>, ticket: Ticket) {
    let sent = match read_record(&inner, &ticket).await {
        Ok((header, payload)) => {
            let meta = Meta { content_type: header.content_type, content_encoding: header.content_encoding };
            Sent::Attempted(inner.post(&header.url, &meta, &payload).await)
        }
        Err(sent) => sent,
    };
    let now = inner.now();
    let doomed = inner.engine.borrow_mut().on_drain_result(&ticket, &sent, now, inner.random());
    for key in doomed {
        if let Err(e) = settle(inner.host.storage_delete(&key)).await {
            let len = ticket.entry.payload_len;
            inner.engine.borrow_mut().on_delete_failed(&key, len, &describe(&e), now);
            break; // the head is deleted first: what remains is still a whole record
        }
    }
    inner.flush_logs();
}

/// Loads a record and checks it; the error says how the send went instead.
async fn read_record(inner: &Inner, ticket: &Ticket) -> Result<(RecordHeader, Uint8Array), Sent> {
    let corrupt = |reason: String| Sent::Corrupt { reason };
    let mut pieces = Vec::new();
    for (i, key) in ticket.keys().iter().enumerate() {
        let value = settle(inner.host.storage_get(key)).await.map_err(|e| Sent::ReadFailed { error: describe(&e) })?;
        if value.is_undefined() || value.is_null() {
            return Err(if i == 0 { Sent::Gone } else { corrupt(format!("chunk {i} is missing")) });
        }
        let bytes = value.dyn_into::<Uint8Array>().map_err(|_| corrupt("stored value is not bytes".into()))?;
        pieces.push(bytes);
    }
    let record = match pieces.len() {
        1 => pieces.pop().unwrap(),
        _ => concat(&pieces),
    };
    let mut head = vec![0u8; (record.length() as usize).min(MAX_HEADER_LEN)];
    record.subarray(0, head.len() as u32).copy_to(&mut head);
    let (header, at) = RecordHeader::decode(&head).map_err(|e| corrupt(e.to_string()))?;
    if header.payload_len != ticket.entry.payload_len {
        return Err(corrupt(format!("payload length {} differs from its key's {}", header.payload_len, ticket.entry.payload_len)));
    }
    let payload = record.subarray(at as u32, record.length());
    header.verify_payload(payload.length() as u64, checksum(&payload)).map_err(|e| corrupt(e.to_string()))?;
    if origin_of(&header.url).is_none() {
        return Err(corrupt("its URL is not an http(s) URL".into()));
    }
    Ok((header, payload))
}

// ---- options -------------------------------------------------------------------

/// Parses an `OTEL_EXPORTER_OTLP_TIMEOUT`-style value (whole milliseconds);
/// throws a `RangeError` naming `variable` (default `OTEL_EXPORTER_OTLP_TIMEOUT`).
#[wasm_bindgen(js_name = parseOtlpTimeout)]
pub fn parse_otlp_timeout(raw: &str, variable: Option<String>) -> Result<f64, JsValue> {
    let variable = variable.as_deref().unwrap_or("OTEL_EXPORTER_OTLP_TIMEOUT");
    let ms = otlp_env::parse_timeout_ms(variable, raw).map_err(|e| range_error(&e.to_string()))?;
    Ok(ms as f64)
}

/// Parses an `OTEL_EXPORTER_OTLP_HEADERS`-style list (`k=v,k2=v2`, percent-encoded)
/// into an object of header names to values. Throws a `TypeError` naming
/// `variable` for a malformed list.
#[wasm_bindgen(js_name = parseOtlpHeaders)]
pub fn parse_otlp_headers(raw: &str, variable: &str) -> Result<Object, JsValue> {
    let headers = otlp_env::parse_headers(variable, raw).map_err(|e| type_error(&e.to_string()))?;
    let object = Object::new();
    for (name, value) in headers {
        set(&object, &name, &JsValue::from_str(&value));
    }
    Ok(object)
}

type Config = (Policy, String, String, Vec<(String, String)>);

fn read_options(options: &JsValue, env_timeout: Option<&str>) -> Result<Config, JsValue> {
    let options: &Object = options
        .dyn_ref::<Object>()
        .filter(|_| !options.is_function())
        .ok_or_else(|| type_error("createExporter(options): options must be an object"))?;
    for key in Object::keys(options).iter() {
        let key = key.as_string().unwrap_or_default();
        if !NUMERIC_OPTIONS.contains(&key.as_str()) && !OTHER_OPTIONS.contains(&key.as_str()) {
            return Err(type_error(&OptionError::new(&key, "is not an option of export-retry").to_string()));
        }
    }
    let get = |name: &str| Reflect::get(options, &name.into()).unwrap_or(JsValue::UNDEFINED);

    let mut policy = Policy::default();
    if let Some(raw) = env_timeout.filter(|raw| !raw.trim().is_empty()) {
        policy.set_env_timeout(raw).map_err(|e| range_error(&e.to_string()))?;
    }
    for name in NUMERIC_OPTIONS {
        let value = get(name);
        if value.is_undefined() {
            continue;
        }
        let number = value.as_f64().ok_or_else(|| {
            type_error(&OptionError::new(name, format!("must be a number, got {}", type_name(&value))).to_string())
        })?;
        policy.set(name, number).map_err(|e| {
            let shown = js_sys::Number::from(number).to_string_with_radix(10).map(String::from).unwrap_or_default();
            range_error(&format!("{e}, got {shown}"))
        })?;
    }
    policy.validate().map_err(|e| range_error(&e.to_string()))?;

    let endpoint_value = get("endpoint");
    let endpoint = endpoint_value
        .as_string()
        .ok_or_else(|| type_error(&OptionError::new("endpoint", format!("must be an absolute http(s) URL string, got {}", type_name(&endpoint_value))).to_string()))?;
    let origin = origin_of(&endpoint)
        .filter(|_| endpoint.len() <= MAX_URL_LEN)
        .ok_or_else(|| type_error(&OptionError::new("endpoint", format!("must be an absolute http(s) URL, got \"{endpoint}\"")).to_string()))?;

    let headers = read_headers(&get("headers"))?;
    Ok((policy, endpoint, origin, headers))
}

fn read_headers(value: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let bad = |problem: String| type_error(&OptionError::new("headers", problem).to_string());
    let object = value
        .dyn_ref::<Object>()
        .filter(|_| !Array::is_array(value) && !value.is_function())
        .ok_or_else(|| bad(format!("must be an object of header names to string values, got {}", type_name(value))))?;
    let mut headers = Vec::new();
    for entry in Object::entries(object).iter() {
        let entry: Array = entry.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1);
        let value = value
            .as_string()
            .ok_or_else(|| bad(format!("value of \"{name}\" must be a string, got {}", type_name(&value))))?;
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(bad(format!("\"{name}\" is not a valid header name")));
        }
        if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
            return Err(bad(format!("value of \"{name}\" contains a line break or NUL")));
        }
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

/// How a payload is described: its content type and encoding, from the options
/// of `export` and `spool` (`contentType`, default `application/x-protobuf`;
/// `contentEncoding`, e.g. `gzip`, default none). Both are stored with a record.
struct Meta {
    content_type: String,
    content_encoding: String,
}

fn read_meta(options: &JsValue, method: &str) -> Result<Meta, JsValue> {
    let mut meta = Meta { content_type: DEFAULT_CONTENT_TYPE.into(), content_encoding: String::new() };
    if options.is_undefined() || options.is_null() {
        return Ok(meta);
    }
    if !options.is_object() {
        return Err(type_error(&format!("{method}(body, options): options must be an object")));
    }
    let field = |name: &str, max: usize, allow_empty: bool| -> Result<Option<String>, JsValue> {
        let value = Reflect::get(options, &name.into()).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() {
            return Ok(None);
        }
        match value.as_string() {
            Some(v) if (allow_empty || !v.is_empty()) && v.len() <= max && !v.chars().any(char::is_control) => Ok(Some(v)),
            _ => Err(type_error(&format!(
                "{method}(body, options): {name} must be a string of at most {max} characters without control characters"
            ))),
        }
    };
    if let Some(ct) = field("contentType", MAX_CONTENT_TYPE_LEN, false)? {
        meta.content_type = ct;
    }
    if let Some(ce) = field("contentEncoding", MAX_CONTENT_ENCODING_LEN, true)? {
        meta.content_encoding = ce;
    }
    Ok(meta)
}

// ---- helpers -------------------------------------------------------------------

/// wasm32 has no unwinding: a panic aborts the call with a `RuntimeError`. The
/// hook first prints what panicked, so a bug report has more than "unreachable".
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            web_sys::console::error_1(&format!("[export-retry] internal error (please report): {info}").into());
        }));
    });
}

/// Awaits a host call's result, whether it returned a value, a promise or threw.
async fn settle(result: Result<JsValue, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&result?)).await
}

fn string_array(value: &JsValue) -> Result<Vec<String>, JsValue> {
    let array = value.dyn_ref::<Array>().ok_or_else(|| type_error("storage list() must return an array of keys"))?;
    Ok(array.iter().filter_map(|k| k.as_string()).collect())
}

/// The origin of an absolute http(s) URL, from the host's own URL parser.
fn origin_of(url: &str) -> Option<String> {
    let parsed = Url::new(url).ok()?;
    matches!(parsed.protocol().as_str(), "http:" | "https:").then(|| parsed.origin())
}

/// CRC-32 of bytes held in JavaScript, copied into wasm memory a piece at a time.
fn checksum(bytes: &Uint8Array) -> u32 {
    let len = bytes.length();
    let mut hasher = Checksum::new();
    let mut buf = vec![0u8; len.min(CHECKSUM_PIECE) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHECKSUM_PIECE);
        bytes.subarray(at, at + n).copy_to(&mut buf[..n as usize]);
        hasher.update(&buf[..n as usize]);
        at += n;
    }
    hasher.finalize()
}

fn concat(pieces: &[Uint8Array]) -> Uint8Array {
    let total = pieces.iter().map(Uint8Array::length).sum();
    let out = Uint8Array::new_with_length(total);
    let mut at = 0;
    for piece in pieces {
        out.set(piece, at);
        at += piece.length();
    }
    out
}

/// Cancels an unread response body and waits for that, so the connection goes
/// back to the pool before the next request (not waiting made every export open a
/// new connection). The body of a response is never read: a hostile backend cannot
/// make us buffer it.
async fn discard_body(response: &FetchResponse) {
    let body = response.body();
    if body.is_object() {
        let _ = settle(body.unchecked_into::<Cancelable>().cancel()).await;
    }
}

fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &key.into(), value);
}

fn to_js<T: Serialize>(value: &T) -> JsValue {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
}

fn describe(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

fn type_name(value: &JsValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    if Array::is_array(value) {
        return "an array".into();
    }
    value.js_typeof().as_string().unwrap_or_default()
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

fn range_error(message: &str) -> JsValue {
    js_sys::RangeError::new(message).into()
}

/// 64 bits from the host's entropy (`crypto.getRandomValues`), for seeds. workerd
/// refuses random values at module top level: this runs in constructors only.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
