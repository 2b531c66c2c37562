/**
 * A Node process with a spooled backlog exits by itself once its work is done:
 * the drain's pending wake-up (an unref'd timer) must not keep it alive. The
 * backlog it leaves on disk is delivered by the next exporter on the directory.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { startBackend } from "../support/backend.js";
import { runNode } from "../support/child.js";
import { waitUntil, guardUnhandledRejections, cleanups } from "../support/wait.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());

const FIXTURE = fileURLToPath(new URL("./fixtures/spool-and-return.mjs", import.meta.url));
const EXIT_DEADLINE_MS = 15_000;
const HEAD_KEY_RE = /^r[0-9a-f]{16}\.[0-9a-f]{8}\.[0-9a-f]+$/;

test("a process with a spooled backlog exits by itself; the next exporter delivers the backlog", { timeout: 30_000 }, async (t) => {
  const defer = cleanups(t);
  const root = await mkdtemp(join(tmpdir(), "export-retry-exit-"));
  defer(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, "spool");
  const backend = await startBackend();
  defer(() => backend.close());
  await backend.setMode("503");

  const child = await runNode([FIXTURE], { env: { ER_ENDPOINT: `${backend.url}/v1/traces`, ER_DIR: dir, ER_COUNT: "3" }, deadlineMs: EXIT_DEADLINE_MS });
  assert.equal(child.signal, null, child.stderr);
  assert.equal(child.code, 0, `exit code ${child.code}\nstderr: ${child.stderr}`);
  const line = child.stdout.trim().split("\n").at(-1);
  const report = JSON.parse(line);
  assert.deepEqual(report.results.map((r) => r.outcome), ["spooled", "spooled", "spooled"], line);
  assert.equal(report.queued, 3);
  assert.equal(report.wakePending, true, "the drain's wake-up was pending when main returned");
  const names = await readdir(dir);
  assert.equal(names.filter((n) => HEAD_KEY_RE.test(n)).length, 3, `spool dir: ${names.join(", ")}`);
  assert.equal(names.length, 3, `no other files: ${names.join(", ")}`);

  // Recovery in this process, with the backend up and no new export.
  const requestsBefore = backend.requests.length;
  await backend.setMode("ok");
  const errors = [];
  const exporter = await createExporter({
    endpoint: `${backend.url}/v1/traces`, storage: new FileStorage({ dir }),
    immediateRetryDelayMs: 20, timeoutMs: 2000,
    logger: { warn() {}, error: (m) => errors.push(m) },
  });
  defer(() => exporter.shutdown());
  await backend.waitFor((b) => b.delivered.length === 3, { timeoutMs: 5000, what: "the child's 3 records" });
  await waitUntil(async () => (await readdir(dir)).length === 0, { what: "spool directory emptied" });
  assert.equal(backend.requests.length - requestsBefore, 3, "each record once");
  assert.deepEqual(
    backend.delivered.map((r) => r.body.toString()).sort(),
    ["child-payload-0", "child-payload-1", "child-payload-2"],
  );
  assert.equal(exporter.stats().queued, 0);
  assert.deepEqual(errors, []);
});
