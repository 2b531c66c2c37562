/**
 * Integration tests of the exporter against a real HTTP backend on 127.0.0.1:
 * the export path, the spool, the drain, logging, options and host faults.
 * Every wait is on a condition with a deadline; delays are shortened via options.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExporter, MemoryStorage } from "export-retry";
import { FileStorage } from "export-retry/node";
import { startBackend } from "../support/backend.js";
import { waitUntil, guardUnhandledRejections, cleanups } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());

const TIMEOUT = { timeout: 20_000 };
const FAST = { immediateRetryDelayMs: 20, initialDelayMs: 20, maxDelayMs: 200, timeoutMs: 300 };
/** No drain wake-up during the test: only an explicit probe or a restart can drain. */
const NO_DRAIN = { initialDelayMs: 60_000, maxDelayMs: 60_000 };
const KEY_RE = /^r[0-9a-f]{16}\.[0-9a-f]{8}\.[0-9a-f]+(\.[0-9a-f]+)?$/;
const HEAD_KEY_RE = /^r[0-9a-f]{16}\.[0-9a-f]{8}\.[0-9a-f]+$/;

const enc = new TextEncoder();
/** A payload of `size` bytes that starts with a readable tag. */
function payload(tag, size = 100) {
  const out = new Uint8Array(size).fill(0x2e); // "."
  out.set(enc.encode(tag).subarray(0, size));
  return out;
}
/** A payload whose first 8 bytes encode `i`, for order checks. */
const indexed = (i, size = 100) => payload(`idx-${String(i).padStart(4, "0")}`, size);
const indexOf = (body) => {
  const m = /^idx-(\d{4})/.exec(Buffer.from(body).subarray(0, 8).toString("latin1"));
  return m ? Number(m[1]) : -1;
};
const same = (a, b) => Buffer.from(a).equals(Buffer.from(b));

function captureLogger() {
  const warns = [];
  const errors = [];
  return { warns, errors, warn: (m) => warns.push(String(m)), error: (m) => errors.push(String(m)) };
}

/** A backend plus an exporter on it, both cleaned up after the test. */
async function setup(t, options = {}, defer = cleanups(t)) {
  const backend = await startBackend();
  defer(() => backend.close());
  const storage = options.storage ?? new MemoryStorage();
  const logger = options.logger ?? captureLogger();
  const exporter = await createExporter({
    endpoint: `${backend.url}/v1/traces`,
    ...FAST,
    ...options,
    storage,
    logger,
  });
  defer(() => exporter.shutdown());
  return { backend, storage, logger, exporter, defer };
}

async function storedValues(storage) {
  const keys = await storage.list("");
  return Promise.all(keys.map(async (key) => ({ key, value: await storage.get(key) })));
}

async function tempDir(defer) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-exporter-test-"));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// 1 ------------------------------------------------------------------------------

test("healthy backend: delivered in one attempt, body, content type and Authorization as sent", TIMEOUT, async (t) => {
  const { backend, storage, logger, exporter } = await setup(t, { headers: { Authorization: "Bearer abc" } });
  const body = randomBytes(4096);
  const result = await exporter.export(new Uint8Array(body), { contentType: "application/json" });
  assert.deepEqual(result, { outcome: "delivered", attempts: 1, status: 200 });
  assert.equal(backend.requests.length, 1);
  const [req] = backend.requests;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/v1/traces");
  assert.ok(req.body.equals(body), "byte-identical body");
  assert.equal(req.headers["content-type"], "application/json");
  assert.equal(req.headers.authorization, "Bearer abc");
  const s = exporter.stats();
  assert.equal(s.delivered, 1);
  assert.equal(s.queued, 0);
  assert.equal(s.spooled, 0);
  assert.equal(storage.size, 0);
  assert.deepEqual(logger.warns, []);
  assert.deepEqual(logger.errors, []);
});

// 2 ------------------------------------------------------------------------------

test("each retryable failure as first attempt, then ok: delivered on the immediate retry", TIMEOUT, async (t) => {
  const kinds = [
    ["503", "503"],
    ["429 without Retry-After", { status: 429 }],
    ["500", "500"],
    ["408", { status: 408 }],
    ["reset", "reset"],
    ["hang (timeout)", "hang"],
  ];
  for (const [name, mode] of kinds) {
    await t.test(name, async (t) => {
      const { backend, storage, exporter, logger } = await setup(t);
      backend.enqueue(mode);
      const result = await exporter.export(payload(`retry-${name}`));
      assert.equal(result.outcome, "delivered", JSON.stringify(result));
      assert.equal(result.attempts, 2);
      assert.equal(backend.requests.length, 2);
      assert.notEqual(backend.requests[0].mode, "ok", "first attempt met the failure");
      assert.equal(backend.delivered.length, 1);
      assert.ok(same(backend.delivered[0].body, payload(`retry-${name}`)));
      assert.equal(storage.size, 0, "nothing spooled");
      assert.equal(exporter.stats().spooled, 0);
      assert.deepEqual(logger.warns, []);
    });
  }

  await t.test("refused connection", async (t) => {
    let calls = 0;
    let firstError;
    let backendRef;
    const fetchFn = async (url, init) => {
      calls += 1;
      const call = calls;
      try {
        return await fetch(url, init);
      } catch (err) {
        if (call === 1) {
          firstError = err;
          await backendRef.setMode("ok"); // the backend comes back before the immediate retry
        }
        throw err;
      }
    };
    const { backend, storage, exporter } = await setup(t, { fetch: fetchFn });
    backendRef = backend;
    await backend.setMode("refuse");
    const result = await exporter.export(payload("after-refuse"));
    assert.ok(firstError, "the first attempt failed at the network level");
    assert.equal(result.outcome, "delivered", JSON.stringify(result));
    assert.equal(result.attempts, 2);
    assert.equal(calls, 2);
    assert.equal(backend.requests.length, 1, "the refused attempt never reached the server");
    assert.ok(same(backend.delivered[0].body, payload("after-refuse")));
    assert.equal(storage.size, 0);
  });
});

// 3 ------------------------------------------------------------------------------

test("two failures spool; after recovery the drain delivers it with no new export", TIMEOUT, async (t) => {
  const { backend, storage, logger, exporter } = await setup(t, {
    headers: { Authorization: "Bearer drain-token" },
  });
  await backend.setMode("503");
  const body = payload("spool-me", 321);
  const result = await exporter.export(body, { contentType: "application/json" });
  assert.deepEqual(result, { outcome: "spooled", attempts: 2, status: 503 });
  assert.equal(exporter.stats().queued, 1);
  assert.equal(exporter.stats().queuedBytes, 321);
  assert.equal(storage.size, 1);
  assert.deepEqual(logger.warns, ["Currently retrying 1 failed export(s) (321 bytes)"]);
  assert.deepEqual(logger.errors, []);

  await backend.setMode("ok");
  await backend.waitFor((b) => b.delivered.length === 1, { timeoutMs: 5000, what: "the drained delivery" });
  await waitUntil(() => exporter.stats().queued === 0 && storage.size === 0, { what: "spool emptied" });
  const s = exporter.stats();
  assert.equal(s.delivered, 1);
  assert.equal(s.spooled, 1);
  assert.equal(s.inFlight, 0);
  assert.equal(s.nextAttemptAt, null, "backoff reset after the success");
  const [req] = backend.delivered;
  assert.ok(same(req.body, body), "byte-identical");
  assert.equal(req.headers.authorization, "Bearer drain-token", "credentials supplied again from configuration");
  assert.equal(req.headers["content-type"], "application/json", "content type kept in the record");
  assert.equal(backend.delivered.length, 1, "delivered once");
});

// 4 ------------------------------------------------------------------------------

test("non-retryable statuses are rejected at once, logged, never stored or retried", TIMEOUT, async (t) => {
  for (const status of [400, 401, 403, 404, 413]) {
    await t.test(String(status), async (t) => {
      const { backend, storage, logger, exporter } = await setup(t);
      backend.enqueue(String(status));
      const result = await exporter.export(payload(`reject-${status}`));
      assert.deepEqual(result, { outcome: "rejected", attempts: 1, status });
      assert.equal(logger.errors.length, 1, logger.errors.join("\n"));
      assert.ok(logger.errors[0].includes(String(status)), logger.errors[0]);
      await exporter.drain();
      await exporter.forceFlush();
      assert.equal(storage.size, 0);
      assert.equal(backend.requests.length, 1, "exactly one request");
      const s = exporter.stats();
      assert.equal(s.rejected, 1);
      assert.equal(s.queued, 0);
      assert.equal(s.nextAttemptAt, null);
    });
  }
});

// 5 ------------------------------------------------------------------------------

test("Retry-After longer than the immediate delay: spooled after one attempt, drain held back", TIMEOUT, async (t) => {
  await t.test("429 with Retry-After: 3 (seconds)", async (t) => {
    const { backend, storage, exporter } = await setup(t);
    await backend.setMode({ status: 429, retryAfter: "3" });
    const result = await exporter.export(payload("ra-429"));
    assert.deepEqual(result, { outcome: "spooled", attempts: 1, status: 429 });
    assert.equal(backend.requests.length, 1);
    assert.equal(storage.size, 1);
    const { nextAttemptAt } = exporter.stats();
    assert.equal(typeof nextAttemptAt, "number");
    assert.ok(nextAttemptAt - Date.now() >= 2000, `next attempt in ${nextAttemptAt - Date.now()} ms`);
  });

  await t.test("503 with an HTTP-date Retry-After", async (t) => {
    const { backend, storage, exporter } = await setup(t);
    const at = new Date(Date.now() + 10_000).toUTCString();
    await backend.setMode({ status: 503, retryAfter: at });
    const result = await exporter.export(payload("ra-503"));
    assert.deepEqual(result, { outcome: "spooled", attempts: 1, status: 503 });
    assert.equal(backend.requests.length, 1);
    assert.equal(storage.size, 1);
    const { nextAttemptAt } = exporter.stats();
    assert.equal(typeof nextAttemptAt, "number");
    assert.ok(nextAttemptAt - Date.now() >= 5000, `next attempt in ${nextAttemptAt - Date.now()} ms`);
  });
});

// 6 ------------------------------------------------------------------------------

test("capacity: an export that would exceed maxSpoolBytes is dropped with the contract error", TIMEOUT, async (t) => {
  const { backend, storage, logger, exporter } = await setup(t, { ...NO_DRAIN, maxSpoolBytes: 250 });
  await backend.setMode("503");
  assert.equal((await exporter.export(payload("cap-1"))).outcome, "spooled");
  assert.equal((await exporter.export(payload("cap-2"))).outcome, "spooled");
  const third = await exporter.export(payload("cap-3"));
  assert.equal(third.outcome, "dropped");
  assert.deepEqual(logger.errors, ["Already retrying 2 failed exports (200 bytes), dropping an export"]);
  assert.equal(storage.size, 2);
  const s = exporter.stats();
  assert.equal(s.queued, 2);
  assert.equal(s.queuedBytes, 200);
  assert.equal(s.dropped, 1);
});

// 7 ------------------------------------------------------------------------------

test("the retrying warning is rate-limited by logIntervalMs", TIMEOUT, async (t) => {
  await t.test("large interval: one warning for 5 spooled exports", async (t) => {
    const { backend, logger, exporter } = await setup(t, { ...NO_DRAIN, logIntervalMs: 600_000 });
    await backend.setMode("503");
    for (let i = 0; i < 5; i++) assert.equal((await exporter.export(payload(`rl-${i}`))).outcome, "spooled");
    assert.deepEqual(logger.warns, ["Currently retrying 1 failed export(s) (100 bytes)"]);
  });

  await t.test("interval 0: one warning per spooled export", async (t) => {
    const { backend, logger, exporter } = await setup(t, { ...NO_DRAIN, logIntervalMs: 0 });
    await backend.setMode("503");
    for (let i = 0; i < 5; i++) assert.equal((await exporter.export(payload(`rl0-${i}`))).outcome, "spooled");
    assert.deepEqual(
      logger.warns,
      [1, 2, 3, 4, 5].map((n) => `Currently retrying ${n} failed export(s) (${n * 100} bytes)`),
    );
  });
});

// 8 ------------------------------------------------------------------------------

test("a backlog of 50 drains concurrently (at most drainConcurrency), oldest first", TIMEOUT, async (t) => {
  let recording = false;
  let active = 0;
  let maxActive = 0;
  const starts = [];
  const fetchFn = async (url, init) => {
    const counted = recording;
    if (counted) {
      active += 1;
      maxActive = Math.max(maxActive, active);
      starts.push(indexOf(init.body));
    }
    try {
      return await fetch(url, init);
    } finally {
      if (counted) active -= 1;
    }
  };
  // First drain wake-up is >= 200 ms after the first failure: spooling is mostly probes.
  const { backend, storage, exporter } = await setup(t, {
    fetch: fetchFn, initialDelayMs: 200, maxDelayMs: 400, logIntervalMs: 600_000,
  });
  await backend.setMode("503");
  for (let i = 0; i < 50; i++) {
    const r = await exporter.export(indexed(i));
    assert.equal(r.outcome, "spooled", `export ${i}: ${JSON.stringify(r)}`);
  }
  assert.equal(exporter.stats().queued, 50);
  assert.equal(storage.size, 50);

  // Switch when no drain send is in flight, so every later send is recorded and meets "ok".
  let switched;
  await waitUntil(() => {
    if (exporter.stats().inFlight !== 0) return false;
    recording = true;
    switched = backend.setMode("ok");
    return true;
  }, { what: "a moment with no drain send in flight" });
  await switched;

  await backend.waitFor((b) => b.delivered.length === 50, { timeoutMs: 10_000, what: "50 drained deliveries" });
  await waitUntil(() => exporter.stats().queued === 0 && storage.size === 0, { what: "spool emptied" });
  const deliveredIdx = backend.delivered.map((r) => indexOf(r.body)).sort((a, b) => a - b);
  assert.deepEqual(deliveredIdx, [...Array(50).keys()], "each record delivered exactly once");
  // Oldest first, within the concurrency window: record j is taken only when at
  // most 3 others are in flight, so every record <= j - 4 was sent before j. (The
  // exact start order inside a window of 4 depends on the storage's read latency.)
  const firstStarts = starts.filter((x, i) => starts.indexOf(x) === i);
  assert.deepEqual(firstStarts.slice().sort((a, b) => a - b), [...Array(50).keys()], "every record attempted");
  assert.equal(firstStarts[0], 0, "the oldest record goes first");
  firstStarts.forEach((j, pos) => {
    const earlier = new Set(firstStarts.slice(0, pos));
    for (let i = 0; i <= j - 4; i++) {
      assert.ok(earlier.has(i), `record ${j} was sent before record ${i} (start order ${firstStarts.join(",")})`);
    }
  });
  assert.ok(maxActive > 1, `sends overlapped (max in flight ${maxActive})`);
  assert.ok(maxActive <= 4, `at most drainConcurrency (4) in flight, saw ${maxActive}`);
  assert.equal(exporter.stats().delivered, 50);
});

// 9 ------------------------------------------------------------------------------

test("probe during backoff: one attempt while down; a successful export drains the backlog at once", TIMEOUT, async (t) => {
  const { backend, storage, exporter } = await setup(t, NO_DRAIN);
  await backend.setMode("503");
  const a = await exporter.export(payload("probe-a"));
  assert.deepEqual(a, { outcome: "spooled", attempts: 2, status: 503 });
  const b = await exporter.export(payload("probe-b"));
  assert.deepEqual(b, { outcome: "spooled", attempts: 1, status: 503 }, "a probe is a single attempt");
  assert.equal(backend.requests.length, 3);
  const { nextAttemptAt } = exporter.stats();
  assert.ok(nextAttemptAt - Date.now() > 30_000, "the drain alone would wait a long time");

  await backend.setMode("ok");
  const c = await exporter.export(payload("probe-c"));
  assert.deepEqual(c, { outcome: "delivered", attempts: 1, status: 200 });
  await backend.waitFor((bk) => bk.delivered.length === 3, { timeoutMs: 5000, what: "the backlog drained after the probe" });
  await waitUntil(() => exporter.stats().queued === 0 && storage.size === 0, { what: "spool emptied" });
  const bodies = backend.delivered.map((r) => r.body.subarray(0, 7).toString());
  assert.deepEqual(bodies.slice().sort(), ["probe-a", "probe-b", "probe-c"]);
  assert.equal(bodies[0], "probe-c");
});

// 10 -----------------------------------------------------------------------------

const SECRET_HEADERS = { Authorization: "Bearer TOPSECRET-123", "x-api-key": "KEY-456" };
const SECRETS = ["TOPSECRET-123", "KEY-456"];
const MARKER = "PAYLOAD-MARKER";

test("no configured header value is ever written to storage", TIMEOUT, async (t) => {
  await t.test("MemoryStorage", async (t) => {
    const { backend, storage, exporter } = await setup(t, { ...NO_DRAIN, headers: SECRET_HEADERS });
    await backend.setMode("503");
    for (let i = 0; i < 3; i++) assert.equal((await exporter.export(payload(`${MARKER}-${i}`, 500))).outcome, "spooled");
    const stored = await storedValues(storage);
    assert.equal(stored.length, 3);
    const all = Buffer.concat([Buffer.from(stored.map((s) => s.key).join("\n")), ...stored.map((s) => Buffer.from(s.value))]);
    assert.ok(all.includes(MARKER), "the scan sees the payloads (sanity)");
    for (const secret of SECRETS) assert.ok(!all.includes(secret), `${secret} found in storage`);
    // The requests did carry them.
    assert.equal(backend.requests[0].headers.authorization, "Bearer TOPSECRET-123");
    assert.equal(backend.requests[0].headers["x-api-key"], "KEY-456");
  });

  await t.test("FileStorage", async (t) => {
    const defer = cleanups(t);
    const dir = await tempDir(defer);
    const { backend, exporter } = await setup(t, { ...NO_DRAIN, headers: SECRET_HEADERS, storage: new FileStorage({ dir }) }, defer);
    await backend.setMode("503");
    for (let i = 0; i < 3; i++) assert.equal((await exporter.export(payload(`${MARKER}-${i}`, 500))).outcome, "spooled");
    await exporter.forceFlush();
    const names = await readdir(dir);
    assert.equal(names.filter((n) => HEAD_KEY_RE.test(n)).length, 3);
    const all = Buffer.concat([Buffer.from(names.join("\n")), ...(await Promise.all(names.map((n) => readFile(join(dir, n)))))]);
    assert.ok(all.includes(MARKER), "the scan sees the payloads (sanity)");
    for (const secret of SECRETS) assert.ok(!all.includes(secret), `${secret} found in ${dir}`);
  });
});

// 11 -----------------------------------------------------------------------------

test("a record spooled for another origin is sent there without this exporter's credentials", TIMEOUT, async (t) => {
  const defer = cleanups(t);
  const backendA = await startBackend();
  defer(() => backendA.close());
  const backendB = await startBackend();
  defer(() => backendB.close());
  const storage = new MemoryStorage();

  await backendB.setMode("503");
  const first = await createExporter({
    endpoint: `${backendB.url}/v1/traces`, storage, logger: captureLogger(), ...FAST, ...NO_DRAIN,
    headers: { Authorization: "Bearer B-SECRET" },
  });
  const spooled = await first.export(payload("for-B"));
  await first.shutdown();
  assert.equal(spooled.outcome, "spooled");
  assert.equal(storage.size, 1);
  assert.equal(backendB.requests[0].headers.authorization, "Bearer B-SECRET");
  backendB.reset();
  await backendB.setMode("ok");

  const second = await createExporter({
    endpoint: `${backendA.url}/v1/traces`, storage, logger: captureLogger(), ...FAST,
    headers: { Authorization: "Bearer A-SECRET", "x-api-key": "A-KEY" },
  });
  defer(() => second.shutdown());
  await backendB.waitFor((b) => b.delivered.length === 1, { timeoutMs: 5000, what: "the record at B" });
  await waitUntil(() => second.stats().queued === 0 && storage.size === 0, { what: "spool emptied" });
  const [req] = backendB.delivered;
  assert.ok(same(req.body, payload("for-B")));
  assert.equal(req.headers.authorization, undefined, "A's Authorization never goes to B");
  assert.equal(req.headers["x-api-key"], undefined, "A's headers never go to B");
  assert.equal(backendA.requests.length, 0, "A got nothing");
});

// 12 -----------------------------------------------------------------------------

test("bad options reject with a TypeError/RangeError naming the option", TIMEOUT, async (t) => {
  const base = () => ({ endpoint: "http://127.0.0.1:9/v1/traces", storage: new MemoryStorage(), logger: captureLogger() });
  const { endpoint: _omit, ...noEndpoint } = base();
  const { storage: _omitStorage, ...noStorage } = base();
  const storageWithoutPut = { get: async () => undefined, delete: async () => {}, list: async () => [] };
  const cases = [
    ["endpoint missing", noEndpoint, "endpoint"],
    ['endpoint "not a url"', { ...base(), endpoint: "not a url" }, "endpoint"],
    ['endpoint "ftp://x"', { ...base(), endpoint: "ftp://x" }, "endpoint"],
    ["timeoutMs -1", { ...base(), timeoutMs: -1 }, "timeoutMs"],
    ['timeoutMs "5"', { ...base(), timeoutMs: "5" }, "timeoutMs"],
    ["timeoutMs NaN", { ...base(), timeoutMs: NaN }, "timeoutMs"],
    ["maxSpoolBytes 1.5", { ...base(), maxSpoolBytes: 1.5 }, "maxSpoolBytes"],
    ["headers {a: 1}", { ...base(), headers: { a: 1 } }, "headers"],
    ["storage missing", noStorage, "storage"],
    ["storage without put", { ...base(), storage: storageWithoutPut }, "storage"],
    ["logger without error", { ...base(), logger: { warn() {} } }, "logger"],
    ['unknown option "timeoutMS"', { ...base(), timeoutMS: 5 }, "timeoutMS"],
  ];
  for (const [name, options, option] of cases) {
    await assert.rejects(createExporter(options), (err) => {
      assert.ok(err instanceof TypeError || err instanceof RangeError, `${name}: ${err?.name}: ${err?.message}`);
      assert.ok(err.message.includes(option), `${name}: message ${JSON.stringify(err.message)} does not name ${option}`);
      return true;
    }, name);
  }
  await assert.rejects(createExporter({ ...base(), storage: storageWithoutPut }), /put/, "names the missing method");

  const exporter = await createExporter(base());
  t.after(() => exporter.shutdown());
  assert.throws(() => exporter.export("string"), (err) => err instanceof TypeError && /body/.test(err.message));
  assert.throws(() => exporter.export(new ArrayBuffer(3)), (err) => err instanceof TypeError && /body/.test(err.message));
  assert.equal(exporter.stats().dropped, 0, "a bad argument is not an export");

  const saved = process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
  process.env.OTEL_EXPORTER_OTLP_TIMEOUT = "abc";
  try {
    await assert.rejects(createExporter(base()), (err) => {
      assert.ok(err instanceof TypeError || err instanceof RangeError, `${err?.name}: ${err?.message}`);
      assert.ok(err.message.includes("OTEL_EXPORTER_OTLP_TIMEOUT"), err.message);
      return true;
    });
  } finally {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
    else process.env.OTEL_EXPORTER_OTLP_TIMEOUT = saved;
  }
});

// 13 -----------------------------------------------------------------------------

/** A storage adapter over MemoryStorage whose methods can be made to fail. */
function faultyStorage() {
  const inner = new MemoryStorage();
  const faults = { put: null, getSync: null };
  return {
    inner,
    faults,
    get(key) {
      if (faults.getSync) throw faults.getSync; // synchronous throw, not a rejection
      return inner.get(key);
    },
    put(key, value) {
      if (faults.put) return Promise.reject(faults.put);
      return inner.put(key, value);
    },
    delete: (key) => inner.delete(key),
    list: (prefix) => inner.list(prefix),
  };
}

test("host faults have defined outcomes and log lines", TIMEOUT, async (t) => {
  await t.test("storage put rejects: the export is dropped and the error logged", async (t) => {
    const storage = faultyStorage();
    storage.faults.put = new Error("quota exceeded (injected)");
    const { backend, logger, exporter } = await setup(t, { storage });
    await backend.setMode("503");
    const result = await exporter.export(payload("put-fails"));
    assert.equal(result.outcome, "dropped");
    assert.ok(logger.errors.some((m) => m.includes("quota exceeded (injected)")), logger.errors.join("\n"));
    assert.equal(storage.inner.size, 0);
    const s = exporter.stats();
    assert.equal(s.dropped, 1);
    assert.equal(s.queued, 0);
    assert.equal(s.queuedBytes, 0);
  });

  await t.test("storage get throws synchronously during the drain: record kept, error logged", async (t) => {
    const storage = faultyStorage();
    const { backend, logger, exporter } = await setup(t, { storage, logIntervalMs: 0 });
    await backend.setMode("503");
    assert.equal((await exporter.export(payload("get-fails"))).outcome, "spooled");
    storage.faults.getSync = new Error("get exploded (injected)");
    await backend.setMode("ok");
    await waitUntil(() => logger.errors.some((m) => m.includes("get exploded (injected)")), { what: "the read failure logged" });
    assert.equal(storage.inner.size, 1, "record kept");
    assert.equal(exporter.stats().queued, 1);
    assert.equal(backend.delivered.length, 0);
    unhandled.assertNone();

    storage.faults.getSync = null;
    await backend.waitFor((b) => b.delivered.length === 1, { timeoutMs: 5000, what: "delivery once reads work" });
    assert.ok(same(backend.delivered[0].body, payload("get-fails")));
    await waitUntil(() => storage.inner.size === 0 && exporter.stats().queued === 0, { what: "spool emptied" });
    unhandled.assertNone();
  });

  await t.test("fetch that throws synchronously counts as retryable", async (t) => {
    let calls = 0;
    const fetchFn = () => {
      calls += 1;
      throw new Error("fetch exploded synchronously (injected)");
    };
    const { storage, exporter } = await setup(t, { fetch: fetchFn, ...NO_DRAIN });
    const result = await exporter.export(payload("sync-fetch"));
    assert.equal(result.outcome, "spooled");
    assert.equal(result.attempts, 2);
    assert.equal(calls, 2);
    assert.equal(storage.size, 1);
    unhandled.assertNone();
  });
});

// 14 -----------------------------------------------------------------------------

test("chunking: a 300 KB payload over a 64 KiB value limit is split, then delivered intact", TIMEOUT, async (t) => {
  const storage = new MemoryStorage({ maxValueBytes: 64 * 1024 });
  const { backend, exporter } = await setup(t, { storage, ...NO_DRAIN });
  await backend.setMode("503");
  const body = new Uint8Array(randomBytes(300 * 1024));
  assert.equal((await exporter.export(body)).outcome, "spooled");
  const stored = await storedValues(storage);
  assert.ok(stored.length > 1, `several keys (got ${stored.length})`);
  const heads = stored.filter((s) => HEAD_KEY_RE.test(s.key));
  assert.equal(heads.length, 1);
  const head = heads[0].key;
  assert.ok(head.endsWith(`.${(300 * 1024).toString(16)}`), head);
  for (const { key, value } of stored) {
    assert.match(key, KEY_RE);
    assert.ok(key === head || key.startsWith(`${head}.`), key);
    assert.ok(value.byteLength <= 64 * 1024, `${key}: ${value.byteLength} bytes`);
  }
  const chunkNo = (k) => (k === head ? 0 : parseInt(k.slice(head.length + 1), 16));
  const ordered = stored.slice().sort((a, b) => chunkNo(a.key) - chunkNo(b.key));
  const whole = Buffer.concat(ordered.map((s) => Buffer.from(s.value)));
  assert.ok(whole.subarray(whole.length - body.length).equals(body), "the pieces hold the payload unchanged");

  await backend.setMode("ok");
  assert.equal((await exporter.export(payload("probe"))).outcome, "delivered");
  await backend.waitFor((b) => b.delivered.length === 2, { timeoutMs: 5000, what: "the chunked record delivered" });
  await waitUntil(() => storage.size === 0 && exporter.stats().queued === 0, { what: "every chunk deleted" });
  const big = backend.delivered.find((r) => r.body.length === body.length);
  assert.ok(big && big.body.equals(body), "byte-identical delivery");
});

// 15 -----------------------------------------------------------------------------

test("a corrupt record is removed and counted; the others are delivered", TIMEOUT, async (t) => {
  const { backend, storage, logger, exporter } = await setup(t);
  await backend.setMode("503");
  const bodies = [0, 1, 2].map((i) => indexed(i, 1000));
  for (const b of bodies) assert.equal((await exporter.export(b)).outcome, "spooled");
  const keys = await storage.list("");
  assert.equal(keys.length, 3);
  // While the backend is down the drain only ever tries the oldest record, so the
  // middle one is untouched while it is modified.
  const middle = keys[1];
  const value = await storage.get(middle);
  assert.equal(indexOf(value.subarray(value.length - 1000)), 1, "keys sort oldest first");
  value[value.length >> 1] ^= 0xff;
  await storage.put(middle, value);

  await backend.setMode("ok");
  await backend.waitFor((b) => b.delivered.length === 2, { timeoutMs: 5000, what: "the two intact records" });
  await waitUntil(() => storage.size === 0 && exporter.stats().queued === 0, { what: "spool emptied" });
  assert.deepEqual(backend.delivered.map((r) => indexOf(r.body)).sort(), [0, 2]);
  for (const r of backend.delivered) assert.ok(same(r.body, bodies[indexOf(r.body)]));
  assert.equal(exporter.stats().corrupt, 1);
  assert.equal(exporter.stats().delivered, 2);
  assert.ok(logger.errors.some((m) => /corrupt/i.test(m) && m.includes(middle)), logger.errors.join("\n"));
});

// 16 -----------------------------------------------------------------------------

test("forceFlush waits for exports in flight; export after shutdown is dropped and logged", TIMEOUT, async (t) => {
  // The first fetch is held at a gate, so the export is certainly in flight.
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  let calls = 0;
  const fetchFn = async (url, init) => {
    calls += 1;
    if (calls === 1) await gate;
    return fetch(url, init);
  };
  const { backend, logger, exporter } = await setup(t, { fetch: fetchFn });
  let settled = false;
  const pending = exporter.export(payload("in-flight"));
  pending.then(() => { settled = true; });
  await waitUntil(() => calls === 1, { what: "the export's fetch call" });
  let flushed = false;
  const flush = exporter.forceFlush().then(() => { flushed = true; });
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve)); // let promise chains run
  assert.equal(settled, false);
  assert.equal(flushed, false, "forceFlush resolved while an export was still in flight");
  release();
  await flush;
  assert.equal(settled, true, "forceFlush resolved only after the export settled");
  assert.deepEqual(await pending, { outcome: "delivered", attempts: 1, status: 200 });
  assert.equal(backend.delivered.length, 1);

  await exporter.shutdown();
  const before = backend.requests.length;
  const late = await exporter.export(payload("too-late"));
  assert.equal(late.outcome, "dropped");
  assert.equal(late.attempts, 0);
  assert.equal(calls, 1, "nothing sent after shutdown");
  assert.equal(backend.requests.length, before);
  assert.ok(logger.errors.some((m) => /shut down/.test(m)), logger.errors.join("\n"));
  assert.equal(exporter.stats().dropped, 1);
});
