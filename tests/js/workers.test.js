/**
 * The Workers host in real workerd (`wrangler dev` of the example Worker) against
 * the real loopback backend: the hand-off to the spool object, the alarm drain,
 * restarts on persisted state, chunking, the per-alarm budget, credentials kept
 * out of storage, no public route into the object, and shards.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBackend } from "../support/backend.js";
import { startWorker } from "../support/wrangler.js";
import { waitUntil, guardUnhandledRejections } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
const SECRET = "TOPSECRET-workers-7f3a";
const TIMEOUT = { timeout: 180_000 };
const enc = new TextEncoder();

let backend;
const dirs = [];
const workers = [];

before(async () => {
  backend = await startBackend();
});
after(async () => {
  for (const w of workers) await w.stop().catch(() => {});
  await backend?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  unhandled.assertNone();
});

async function stateDir() {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-workerd-"));
  dirs.push(dir);
  return dir;
}

async function worker(persistDir, { shards = 1, options = {} } = {}) {
  const w = await startWorker({
    persistDir,
    vars: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `${backend.url}/v1/traces`,
      OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${SECRET}`,
      EXPORT_RETRY_SHARDS: String(shards),
      EXPORT_RETRY_OPTIONS: JSON.stringify({ immediateRetryDelayMs: 20, initialDelayMs: 100, maxDelayMs: 400, timeoutMs: 2000, ...options }),
    },
  });
  workers.push(w);
  return w;
}

/** Every byte workerd persisted for the spool objects. */
async function persistedBytes(dir) {
  const doDir = join(dir, "v3", "do");
  const chunks = [];
  for (const cls of await readdir(doDir)) {
    for (const file of await readdir(join(doDir, cls))) chunks.push(await readFile(join(doDir, cls, file)));
  }
  return Buffer.concat(chunks);
}

const total = (stats, key) => stats.reduce((sum, s) => sum + s[key], 0);
const tagged = (tag, size = 200) => {
  const out = new Uint8Array(size).fill(0x2e);
  out.set(enc.encode(tag));
  return out;
};
const deliveredWith = (tag) => backend.delivered.filter((r) => r.body.subarray(0, tag.length).toString() === tag);
const firstDelivered = (tag) => deliveredWith(tag)[0];

test("down: spooled in the object; back: the alarm delivers identical bytes with the configured header, storage empties; nothing secret stored; no public route into the object", TIMEOUT, async () => {
  const dir = await stateDir();
  const w = await worker(dir);
  await backend.setMode("503");
  const body = tagged("case1-", 1000);
  const result = await w.export(body);
  assert.equal(result.outcome, "spooled");
  assert.equal(result.attempts, 2);
  let [stats] = await w.spoolStats();
  assert.equal(stats.queued, 1);
  assert.equal(stats.queuedBytes, 1000);
  assert.ok(stats.nextAttemptAt > 0, "the drain is scheduled");
  // The alarm drains while the backend is still down (and fails, and re-arms).
  await waitUntil(async () => ([stats] = await w.spoolStats(), stats.alarms.length >= 2), { timeoutMs: 20_000, what: "alarm runs during the outage" });
  assert.equal(stats.queued, 1);
  assert.ok(stats.nextAlarm > Date.now() - 1000, "re-armed after a failed run");
  const stored = await persistedBytes(dir);
  assert.ok(stored.includes(Buffer.from("case1-")), "the record is in the object's storage");
  assert.ok(!stored.includes(Buffer.from(SECRET)), "no configured header value in storage");
  assert.ok(!stored.includes(Buffer.from("Bearer")), "no configured header value in storage");

  // Nothing but the two routes answers, and neither writes to or reads from the object directly.
  for (const [method, path] of [["GET", "/"], ["POST", "/spool"], ["GET", "/spool"], ["POST", "/stats"], ["DELETE", "/stats"],
    ["GET", "/v1/traces"], ["PUT", "/v1/traces"], ["POST", "/alarm"], ["GET", "/export-retry-spool-0"]]) {
    const res = await w.fetch(path, { method });
    assert.equal(res.status, 404, `${method} ${path}`);
    await res.body?.cancel();
  }

  await backend.setMode("ok");
  const arrived = await backend.waitFor(() => firstDelivered("case1-"), { timeoutMs: 30_000, what: "the drained record" });
  assert.ok(arrived.body.equals(Buffer.from(body)), "byte-identical");
  assert.equal(arrived.headers.authorization, `Bearer ${SECRET}`);
  await waitUntil(async () => ([stats] = await w.spoolStats(), stats.queued === 0), { timeoutMs: 10_000, what: "an empty spool" });
  assert.equal(stats.delivered, 1);
  assert.ok(stats.alarms.length >= 1);
});

test("a 3 MB payload goes through the spool in chunks and arrives byte-identical", TIMEOUT, async () => {
  const dir = await stateDir();
  const w = await worker(dir);
  await backend.setMode("503");
  const body = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) % 253;
  body.set(enc.encode("case3-"));
  assert.equal((await w.export(body)).outcome, "spooled");
  const [stats] = await w.spoolStats();
  assert.equal(stats.queuedBytes, body.length);
  await backend.setMode("ok");
  const arrived = await backend.waitFor(() => firstDelivered("case3-"), { timeoutMs: 30_000, what: "the 3 MB record" });
  assert.equal(arrived.body.length, body.length);
  assert.ok(arrived.body.equals(Buffer.from(body)), "byte-identical");
  await waitUntil(async () => (await w.spoolStats())[0].queued === 0, { timeoutMs: 10_000, what: "an empty spool" });
});

test("200 spooled records drain within the per-alarm budget across several alarms", TIMEOUT, async () => {
  const dir = await stateDir();
  const w = await worker(dir, { options: { initialDelayMs: 60_000, maxDelayMs: 60_000 } });
  await backend.setMode("503");
  for (let batch = 0; batch < 10; batch++) {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => w.export(tagged(`case4-${batch * 20 + i}-`))));
    assert.ok(results.every((r) => r.outcome === "spooled"), JSON.stringify(results));
  }
  let [stats] = await w.spoolStats();
  assert.equal(stats.queued, 200);
  await backend.setMode("ok");
  // The spool waits out a long backoff; a delivered export (a probe) makes it due now.
  assert.equal((await w.export(tagged("case4-probe-"))).outcome, "delivered");
  await waitUntil(async () => ([stats] = await w.spoolStats(), stats.queued === 0), { timeoutMs: 60_000, what: "the backlog to drain" });
  const runs = stats.alarms.filter((a) => a.sends > 0);
  assert.ok(runs.every((a) => a.sends <= 40), JSON.stringify(runs));
  assert.ok(runs.length >= 5, `${runs.length} alarm runs sent records`);
  const ids = new Set(deliveredWith("case4-").map((r) => r.body.toString("latin1").split("-")[1]).filter((id) => id !== "probe"));
  assert.equal(ids.size, 200, "every record arrived");
  assert.equal(stats.delivered, 200);
});

test("workerd killed with records spooled and restarted on the same state delivers the backlog with no new request", TIMEOUT, async () => {
  const dir = await stateDir();
  const first = await worker(dir);
  await backend.setMode("503");
  for (let i = 0; i < 5; i++) assert.equal((await first.export(tagged(`case2-${i}-`))).outcome, "spooled");
  assert.equal((await first.spoolStats())[0].queued, 5);
  await first.kill();
  await backend.setMode("ok");
  const before = backend.counts.total;
  const second = await worker(dir);
  await backend.waitFor(() => deliveredWith("case2-").length >= 5, { timeoutMs: 60_000, what: "the backlog after the restart" });
  assert.ok(backend.counts.total > before);
  await waitUntil(async () => (await second.spoolStats())[0].queued === 0, { timeoutMs: 10_000, what: "an empty spool" });
});

test("with shards: 4, records spread over 4 objects and all drain", TIMEOUT, async () => {
  const dir = await stateDir();
  const w = await worker(dir, { shards: 4, options: { initialDelayMs: 60_000, maxDelayMs: 60_000 } });
  await backend.setMode("503");
  for (let i = 0; i < 40; i++) assert.equal((await w.export(tagged(`case7-${i}-`))).outcome, "spooled");
  let stats = await w.spoolStats();
  assert.equal(stats.length, 4);
  assert.deepEqual(stats.map((s) => s.queued), [10, 10, 10, 10], "round-robin over the shards");
  await backend.setMode("ok");
  // Every object waits out a long backoff; a delivered probe tells all of them.
  assert.equal((await w.export(tagged("case7-probe-"))).outcome, "delivered");
  await waitUntil(async () => (stats = await w.spoolStats(), total(stats, "queued") === 0), { timeoutMs: 30_000, intervalMs: 100, what: "all four shards to drain" });
  assert.equal(total(stats, "delivered"), 40);
  assert.ok(stats.every((s) => s.delivered === 10));
  assert.equal(deliveredWith("case7-").length, 41);
});

test("corrupt rows in the object's storage are removed and counted; intact records drain; alarm() never throws", TIMEOUT, async () => {
  const dir = await stateDir();
  const first = await worker(dir);
  await backend.setMode("503");
  for (let i = 0; i < 5; i++) assert.equal((await first.export(tagged(`case8-${i}-`))).outcome, "spooled");
  await first.kill();

  // Damage the stopped object's SQLite storage directly.
  const doDir = join(dir, "v3", "do", "export-retry-example-SpoolObject");
  const [file] = (await readdir(doDir)).filter((f) => f.endsWith(".sqlite") && !f.startsWith("metadata"));
  const db = new DatabaseSync(join(doDir, file));
  const rows = db.prepare("SELECT key, value FROM export_retry_spool ORDER BY key").all();
  assert.equal(rows.length, 5);
  const flipped = new Uint8Array(rows[1].value);
  flipped[flipped.length - 3] ^= 0x01;
  const update = db.prepare("UPDATE export_retry_spool SET value = ? WHERE key = ?");
  update.run(flipped, rows[1].key); // a flipped bit
  update.run(new Uint8Array(rows[2].value).subarray(0, 20), rows[2].key); // truncated
  update.run(new Uint8Array(0), rows[3].key); // empty
  db.prepare("INSERT INTO export_retry_spool (key, value) VALUES (?, ?)").run("junk-key", new Uint8Array([1, 2, 3]));
  db.close();

  await backend.setMode("ok");
  const second = await worker(dir);
  await backend.waitFor(() => deliveredWith("case8-").length >= 2 || undefined, { timeoutMs: 30_000, what: "the intact records" });
  let stats;
  await waitUntil(async () => ([stats] = await second.spoolStats(), stats.queued === 0), { timeoutMs: 15_000, what: "an empty spool" });
  const ids = deliveredWith("case8-").map((r) => r.body.toString("latin1").split("-")[1]).sort();
  assert.deepEqual(ids, ["0", "4"]);
  assert.equal(stats.corrupt, 3);
  // Logged: workerd's console reaches wrangler's output a little later.
  await waitUntil(() => /Removed a corrupt spooled record/.test(second.output), { timeoutMs: 10_000, what: "the corrupt-record log line" });
  assert.ok(stats.alarms.length >= 1);
});
