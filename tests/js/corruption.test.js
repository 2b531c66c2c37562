/**
 * Corrupt spool files (Node FileStorage): flipped bits, a truncated record, an
 * empty file, a garbage file with a record's name, a stray unknown file, an orphan
 * chunk, a leftover temp file. A new exporter starts, delivers every intact
 * record, counts and logs the rest, and nothing throws or rejects.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExporter, FileStorage } from "export-retry/node";
import { startBackend } from "../support/backend.js";
import { guardUnhandledRejections, cleanups, waitUntil } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());

const payload = (i) => new TextEncoder().encode(`record-${i}-`.padEnd(300, "."));
const idOf = (body) => Number(/^record-(\d+)-/.exec(body.toString())?.[1]);

test("damaged files are removed and counted; intact records are delivered", { timeout: 30_000 }, async (t) => {
  const defer = cleanups(t);
  const backend = await startBackend();
  defer(() => backend.close());
  const dir = await mkdtemp(join(tmpdir(), "export-retry-corrupt-"));
  defer(() => rm(dir, { recursive: true, force: true }));
  const options = {
    endpoint: `${backend.url}/v1/traces`,
    immediateRetryDelayMs: 1,
    initialDelayMs: 20,
    maxDelayMs: 100,
    logIntervalMs: 0,
  };

  await backend.setMode("503");
  const first = await createExporter({ ...options, storage: new FileStorage({ dir }), logger: { warn() {}, error() {} } });
  for (let i = 0; i < 7; i++) assert.equal((await first.export(payload(i))).outcome, "spooled");
  await first.shutdown();

  const files = (await readdir(dir)).sort(); // oldest first
  assert.equal(files.length, 7);
  const path = (i) => join(dir, files[i]);
  // 1: a flipped bit in the payload; 2: a flipped bit in the header;
  // 3: truncated mid-record; 4: an empty file; 5: garbage under a record's name.
  const flip = async (i, at) => {
    const bytes = await readFile(path(i));
    bytes[at(bytes)] ^= 0x10;
    await writeFile(path(i), bytes);
  };
  await flip(1, (b) => b.length - 5);
  await flip(2, () => 9);
  await truncate(path(3), 100);
  await truncate(path(4), 0);
  await writeFile(path(5), "this is not a record at all");
  await writeFile(join(dir, "notes.txt"), "left by someone else");
  const orphan = `${files[6].replace(/\.[0-9a-f]+$/, ".3e8")}.1`; // a chunk of a record that does not exist
  await writeFile(join(dir, orphan), "half a write");
  await writeFile(join(dir, ".tmp-r0000-crashed"), "an interrupted write");

  await backend.setMode("ok");
  const errors = [];
  const second = await createExporter({ ...options, storage: new FileStorage({ dir }), logger: { warn() {}, error: (m) => errors.push(m) } });
  defer(() => second.shutdown());
  assert.equal(second.stats().queued, 7, "seven records by their names (the orphan chunk and strays are not records)");
  await waitUntil(() => second.stats().queued === 0, { timeoutMs: 15_000, what: "the spool to empty" });
  await second.drain(); // a further pass neither throws nor finds anything

  const delivered = new Set(backend.delivered.map((r) => idOf(r.body)));
  assert.deepEqual([...delivered].sort(), [0, 6], "the intact records");
  const stats = second.stats();
  assert.equal(stats.corrupt, 5);
  assert.equal(stats.delivered, 2);
  assert.equal(errors.filter((m) => m.includes("corrupt")).length, 5, errors.join("\n"));
  assert.ok(errors.some((m) => m.includes("notes.txt")), "the stray file is reported");
  const left = (await readdir(dir)).sort();
  assert.deepEqual(left, ["notes.txt"], "damaged records, the orphan chunk and the temp file are gone; the stray stays");
});
