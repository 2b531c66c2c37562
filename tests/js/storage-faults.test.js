/**
 * Storage faults: an adapter whose put/get/delete/list throws or rejects, or
 * reports a full disk. Every export still resolves with an outcome, the error is
 * logged once per interval, the accounting does not drift, and nothing becomes an
 * unhandled rejection.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createExporter, MemoryStorage } from "export-retry";
import { startBackend } from "../support/backend.js";
import { guardUnhandledRejections, cleanups, waitUntil } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());
const TIMEOUT = { timeout: 30_000 };

/** MemoryStorage with switchable faults per method: "reject", "throw" or null. */
class FaultyStorage extends MemoryStorage {
  faults = { get: null, put: null, delete: null, list: null };
  calls = { get: 0, put: 0, delete: 0, list: 0 };
  #fail(method) {
    this.calls[method] += 1;
    const fault = this.faults[method];
    const err = Object.assign(new Error(`${method}: no space left on device`), { code: "ENOSPC" });
    if (fault === "throw") throw err;
    if (fault === "reject") return Promise.reject(err);
    return null;
  }
  get(k) { return this.#fail("get") ?? super.get(k); }
  put(k, v) { return this.#fail("put") ?? super.put(k, v); }
  delete(k) { return this.#fail("delete") ?? super.delete(k); }
  list(p) { return this.#fail("list") ?? super.list(p); }
}

async function setup(t, storage, options = {}) {
  const defer = cleanups(t);
  const backend = await startBackend();
  defer(() => backend.close());
  const errors = [];
  const exporter = await createExporter({
    endpoint: `${backend.url}/v1/traces`,
    storage,
    immediateRetryDelayMs: 1,
    initialDelayMs: 20,
    maxDelayMs: 100,
    logger: { warn() {}, error: (m) => errors.push(m) },
    ...options,
  });
  defer(() => exporter.shutdown());
  return { backend, exporter, errors };
}

test("a full disk on write: every export resolves dropped, one error per interval, no drift", TIMEOUT, async (t) => {
  for (const fault of ["reject", "throw"]) {
    const storage = new FaultyStorage();
    const { backend, exporter, errors } = await setup(t, storage);
    await backend.setMode("503");
    storage.faults.put = fault;
    const results = await Promise.all(Array.from({ length: 5 }, () => exporter.export(new Uint8Array(100))));
    assert.deepEqual(results.map((r) => r.outcome), Array(5).fill("dropped"), fault);
    assert.equal(errors.length, 1, `once per interval: ${errors.join("\n")}`);
    assert.match(errors[0], /no space left/);
    let s = exporter.stats();
    assert.equal(s.dropped, 5);
    assert.equal(s.queued, 0);
    assert.equal(s.queuedBytes, 0);
    // The disk has room again: capacity was not leaked by the failed writes.
    storage.faults.put = null;
    assert.equal((await exporter.export(new Uint8Array(100))).outcome, "spooled");
    s = exporter.stats();
    assert.equal(s.queued, 1);
    assert.equal(s.queuedBytes, 100);
  }
});

test("a storage that cannot be listed at start: the exporter still works and says so", TIMEOUT, async (t) => {
  const storage = new FaultyStorage();
  storage.faults.list = "reject";
  const { exporter, errors } = await setup(t, storage);
  assert.ok(errors.some((m) => m.includes("could not be listed")), errors.join("\n"));
  assert.equal((await exporter.export(new Uint8Array(10))).outcome, "delivered");
});

test("reads failing during the drain keep the record; it is delivered once reads work", TIMEOUT, async (t) => {
  const storage = new FaultyStorage();
  const { backend, exporter, errors } = await setup(t, storage);
  await backend.setMode("503");
  assert.equal((await exporter.export(new Uint8Array(50))).outcome, "spooled");
  storage.faults.get = "throw";
  await backend.setMode("ok");
  await waitUntil(() => storage.calls.get >= 3, { timeoutMs: 10_000, what: "several failed reads" });
  assert.equal(exporter.stats().queued, 1, "the record stays");
  assert.equal(errors.filter((m) => m.includes("failed to read")).length, 1, "logged once per interval");
  storage.faults.get = null;
  await waitUntil(() => exporter.stats().queued === 0, { timeoutMs: 10_000, what: "the delivery" });
  assert.equal(backend.delivered.length, 1);
  assert.equal(storage.size, 0);
});

test("a failed delete after delivery: logged, not resent in this process, sent again after a restart (at-least-once)", TIMEOUT, async (t) => {
  const storage = new FaultyStorage();
  const { backend, exporter, errors } = await setup(t, storage);
  await backend.setMode("503");
  assert.equal((await exporter.export(new Uint8Array(50))).outcome, "spooled");
  storage.faults.delete = "reject";
  await backend.setMode("ok");
  await waitUntil(() => exporter.stats().delivered === 1, { timeoutMs: 10_000, what: "the delivery" });
  await waitUntil(() => errors.some((m) => m.includes("failed to delete")), { timeoutMs: 5_000, what: "the delete error" });
  assert.equal(exporter.stats().queued, 0);
  assert.equal(storage.size, 1, "the record is still stored");
  await exporter.drain();
  assert.equal(backend.delivered.length, 1, "not resent by this exporter");

  storage.faults.delete = null;
  const again = await createExporter({ endpoint: `${backend.url}/v1/traces`, storage, logger: { warn() {}, error() {} } });
  t.after(() => again.shutdown());
  await waitUntil(() => again.stats().queued === 0 && storage.size === 0, { timeoutMs: 10_000, what: "the restart's delivery" });
  assert.equal(backend.delivered.length, 2, "delivered twice: at-least-once");
});
