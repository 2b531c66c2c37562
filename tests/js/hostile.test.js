/**
 * A hostile backend: an absurd Retry-After, a response body of hundreds of MB, a
 * response head that trickles forever, and redirects (never followed, so
 * credentials never go to another origin).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createExporter, MemoryStorage } from "export-retry";
import { startBackend } from "../support/backend.js";
import { guardUnhandledRejections, cleanups, waitUntil } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());
const TIMEOUT = { timeout: 30_000 };
const YEAR_S = 365 * 24 * 3600;

function logger() {
  const errors = [];
  const warns = [];
  return { errors, warns, warn: (m) => warns.push(m), error: (m) => errors.push(m) };
}

async function setup(t, options = {}) {
  const defer = cleanups(t);
  const backend = await startBackend();
  defer(() => backend.close());
  const log = logger();
  const exporter = await createExporter({
    endpoint: `${backend.url}/v1/traces`,
    headers: { Authorization: "Bearer SECRET-hostile" },
    storage: new MemoryStorage(),
    immediateRetryDelayMs: 20,
    logger: log,
    ...options,
  });
  defer(() => exporter.shutdown());
  return { backend, exporter, log, defer };
}

test("a Retry-After of a year is capped at maxRetryAfterMs (default 15 minutes)", TIMEOUT, async (t) => {
  for (const [options, cap] of [[{}, 900_000], [{ maxRetryAfterMs: 5_000 }, 5_000]]) {
    const { backend, exporter } = await setup(t, options);
    backend.enqueue({ status: 429, retryAfter: String(YEAR_S) });
    const before = Date.now();
    const r = await exporter.export(new Uint8Array(10));
    assert.equal(r.outcome, "spooled");
    assert.equal(r.attempts, 1, "a Retry-After beyond the immediate delay skips the immediate retry");
    const wait = exporter.stats().nextAttemptAt - before;
    assert.ok(wait <= cap + 1_000 && wait >= cap - 1_000, `waits ${wait} ms, cap ${cap}`);
  }
});

test("a response body of hundreds of MB is never read: the client stops it early", TIMEOUT, async (t) => {
  const { backend, exporter } = await setup(t);
  await backend.setMode("huge");
  const r = await exporter.export(new Uint8Array(10));
  assert.equal(r.outcome, "delivered");
  const [req] = backend.requests;
  await waitUntil(() => req.closedAt, { timeoutMs: 10_000, what: "the client to close the endless response" });
  assert.ok(req.bodyBytesSent < 64 * 1024 * 1024, `server managed to send ${req.bodyBytesSent} bytes`);
});

test("a backend that trickles its response head forever is ended by the timeout", TIMEOUT, async (t) => {
  const { backend, exporter } = await setup(t, { timeoutMs: 300 });
  await backend.setMode("trickle");
  const r = await exporter.export(new Uint8Array(10));
  assert.equal(r.outcome, "spooled");
  assert.equal(r.attempts, 2, "both attempts timed out (the second without the immediate wait)");
  assert.equal(backend.counts.byMode.trickle, 2);
});

test("redirects are not followed: credentials never reach another origin", TIMEOUT, async (t) => {
  const defer = cleanups(t);
  const elsewhere = await startBackend();
  defer(() => elsewhere.close());
  for (const status of [301, 302, 303, 307, 308]) {
    const { backend, exporter, log } = await setup(t, { logIntervalMs: 0 });
    backend.enqueue({ status, location: `${elsewhere.url}/steal` });
    const r = await exporter.export(new Uint8Array(10));
    assert.equal(r.outcome, "rejected", `${status}`);
    assert.equal(r.status, status);
    assert.ok(log.errors.some((m) => m.includes(String(status))), log.errors.join("\n"));
  }
  assert.equal(elsewhere.requests.length, 0, "the other origin received nothing");
});
