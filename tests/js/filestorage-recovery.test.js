/**
 * Restart recovery on FileStorage: a backlog spooled by one exporter is found and
 * drained by a new exporter on the same directory, in order, with private files.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { startBackend } from "../support/backend.js";
import { waitUntil, guardUnhandledRejections, cleanups } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());

const TIMEOUT = { timeout: 20_000 };
const FAST = { immediateRetryDelayMs: 20, timeoutMs: 300 };
/** The first exporter never wakes its drain: only the restart can deliver. */
const NO_DRAIN = { initialDelayMs: 60_000, maxDelayMs: 60_000 };
const HEAD_KEY_RE = /^r[0-9a-f]{16}\.[0-9a-f]{8}\.[0-9a-f]+$/;

const enc = new TextEncoder();
const body = (i) => enc.encode(`restart-${String(i).padStart(3, "0")}|${"x".repeat(200 + i)}`);
const indexOf = (buf) => Number(/^restart-(\d{3})\|/.exec(Buffer.from(buf).toString("latin1"))?.[1] ?? -1);

function captureLogger() {
  const warns = [];
  const errors = [];
  return { warns, errors, warn: (m) => warns.push(String(m)), error: (m) => errors.push(String(m)) };
}

async function setup(t) {
  const defer = cleanups(t);
  const dir = join(await mkdtemp(join(tmpdir(), "export-retry-recovery-")), "spool");
  defer(() => rm(join(dir, ".."), { recursive: true, force: true }));
  const backend = await startBackend();
  defer(() => backend.close());
  return { defer, dir, backend };
}

/** Spools `n` indexed exports with a first exporter, then shuts it down. */
async function spoolAndShutdown(backend, dir, n) {
  await backend.setMode("503");
  const logger = captureLogger();
  const first = await createExporter({
    endpoint: `${backend.url}/v1/traces`, storage: new FileStorage({ dir }), logger, ...FAST, ...NO_DRAIN,
  });
  try {
    for (let i = 0; i < n; i++) {
      const r = await first.export(body(i));
      assert.equal(r.outcome, "spooled", `export ${i}: ${JSON.stringify(r)}`);
    }
    assert.equal(first.stats().queued, n);
  } finally {
    await first.shutdown();
  }
  return logger;
}

test("a new exporter on the same directory delivers the whole backlog; files are private", TIMEOUT, async (t) => {
  const { defer, dir, backend } = await setup(t);
  await spoolAndShutdown(backend, dir, 5);

  const names = await readdir(dir);
  assert.equal(names.length, 5, `files: ${names.join(", ")}`);
  for (const name of names) {
    assert.match(name, HEAD_KEY_RE);
    const mode = (await stat(join(dir, name))).mode & 0o777;
    assert.equal(mode, 0o600, `${name} has mode ${mode.toString(8)}`);
  }
  const dirMode = (await stat(dir)).mode & 0o777;
  assert.equal(dirMode, 0o700, `directory has mode ${dirMode.toString(8)}`);
  const requestsBefore = backend.requests.length;

  await backend.setMode("ok");
  const logger = captureLogger();
  const second = await createExporter({
    endpoint: `${backend.url}/v1/traces`, storage: new FileStorage({ dir }), logger, ...FAST,
  });
  defer(() => second.shutdown());
  const bytes = [0, 1, 2, 3, 4].reduce((sum, i) => sum + body(i).length, 0);
  assert.deepEqual(logger.warns, [`Currently retrying 5 failed export(s) (${bytes} bytes)`], "recovery announces the backlog");

  await backend.waitFor((b) => b.delivered.length === 5, { timeoutMs: 5000, what: "5 recovered deliveries" });
  await waitUntil(async () => (await readdir(dir)).length === 0, { what: "spool directory emptied" });
  assert.equal(backend.requests.length - requestsBefore, 5, "exactly the 5 records, each once, no new export");
  const got = backend.delivered.map((r) => indexOf(r.body)).sort((a, b) => a - b);
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  for (const r of backend.delivered) assert.ok(r.body.equals(Buffer.from(body(indexOf(r.body)))), "byte-identical");
  const s = second.stats();
  assert.equal(s.queued, 0);
  assert.equal(s.delivered, 5);
  assert.deepEqual(logger.errors, []);
});

test("spool order survives a restart: the recovered backlog is sent oldest first", TIMEOUT, async (t) => {
  const { defer, dir, backend } = await setup(t);
  await spoolAndShutdown(backend, dir, 8);

  const starts = [];
  const fetchFn = (url, init) => {
    starts.push(indexOf(init.body));
    return fetch(url, init);
  };
  await backend.setMode("ok");
  backend.reset();
  const second = await createExporter({
    endpoint: `${backend.url}/v1/traces`, storage: new FileStorage({ dir }), logger: captureLogger(), ...FAST,
    fetch: fetchFn,
    // One send at a time, so the send order is exactly the drain's order (with more,
    // the order inside a window depends on how fast each file is read).
    drainConcurrency: 1,
  });
  defer(() => second.shutdown());
  await backend.waitFor((b) => b.delivered.length === 8, { timeoutMs: 5000, what: "8 recovered deliveries" });
  await waitUntil(async () => (await readdir(dir)).length === 0, { what: "spool directory emptied" });
  assert.deepEqual(starts, [0, 1, 2, 3, 4, 5, 6, 7], "send order");
});
