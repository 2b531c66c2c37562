/**
 * The demonstration (`npm run demo`): exports to a local endpoint through an
 * outage, a restart and a recovery, with a live status line.
 *
 *   healthy   exports are delivered at once
 *   outage    the endpoint answers 503, then refuses connections: exports are
 *             spooled, the warning appears, the backlog grows
 *   restart   the exporter (Node) or workerd itself (Workers) is stopped and a new
 *             one opens the same spool
 *   recovery  the endpoint comes back: the backlog drains, oldest first
 *
 * It ends with `sent N, delivered N, dropped 0, lost 0` and exit status 0, or says
 * what was lost and exits 1.
 *
 * Options: --exports N (default 200); --runtime node (default: FileStorage in a
 * temporary directory) or --runtime workers (the example Worker in real workerd,
 * spooling to its Durable Object; `npm run demo:workers`).
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createExporter, FileStorage } from "export-retry/node";
import { startBackend } from "../tests/support/backend.js";
import { startWorker } from "../tests/support/wrangler.js";

const { values: args } = parseArgs({
  options: { exports: { type: "string", default: "200" }, runtime: { type: "string", default: "node" } },
});
const total = Number(args.exports);
if (!Number.isInteger(total) || total < 8) {
  console.error(`demo: --exports must be a whole number >= 8, got ${args.exports}`);
  process.exit(2);
}
if (!["node", "workers"].includes(args.runtime)) {
  console.error(`demo: --runtime must be node or workers, got ${args.runtime}`);
  process.exit(2);
}

const tty = process.stdout.isTTY;
const say = (line) => {
  if (tty) process.stdout.write("\r\x1b[K");
  console.log(line);
};

/**
 * The Node target: an exporter in this process on FileStorage. The embedded
 * defaults, with the backoff cap lowered from 128 s to 4 s and the warning
 * interval from 60 s to 5 s so the story fits in half a minute.
 */
async function nodeTarget(endpoint, dir) {
  const options = {
    endpoint,
    headers: { Authorization: "Bearer demo-token" },
    storage: new FileStorage({ dir }),
    maxDelayMs: 4_000,
    logIntervalMs: 5_000,
    logger: { warn: (m) => say(`  warn  ${m}`), error: (m) => say(`  error ${m}`) },
  };
  let exporter = await createExporter(options);
  let before = 0;
  return {
    where: `FileStorage in ${dir}`,
    export: (body) => exporter.export(body, { contentType: "application/json" }),
    stats: async () => {
      const s = exporter.stats();
      return { ...s, delivered: before + s.delivered };
    },
    async restart() {
      await exporter.shutdown();
      before += exporter.stats().delivered;
      const files = (await readdir(dir)).length;
      exporter = await createExporter(options);
      return `a new exporter on the same directory found ${exporter.stats().queued} spooled export(s) (${files} file(s))`;
    },
    close: () => exporter.shutdown(),
  };
}

/** The Workers target: the example Worker in workerd, its spool a Durable Object. */
async function workersTarget(endpoint, dir) {
  const vars = {
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20demo-token",
    EXPORT_RETRY_OPTIONS: JSON.stringify({ maxDelayMs: 4_000 }),
  };
  say("starting the example Worker in workerd (wrangler dev)...");
  let worker = await startWorker({ persistDir: dir, vars });
  const sum = (rows) => rows.reduce((acc, s) => ({
    ...s,
    queued: acc.queued + s.queued,
    queuedBytes: acc.queuedBytes + s.queuedBytes,
    delivered: acc.delivered + s.delivered,
    dropped: acc.dropped + s.dropped,
    inFlight: acc.inFlight + s.inFlight,
  }), { queued: 0, queuedBytes: 0, delivered: 0, dropped: 0, inFlight: 0 });
  let before = 0;
  let last;
  return {
    where: `a SpoolObject Durable Object (state in ${dir})`,
    export: (body) => worker.export(body, "application/json"),
    async stats() {
      try {
        last = sum(await worker.spoolStats());
      } catch {
        // workerd is restarting: show the last figures
      }
      // Exports delivered in the request isolate never reach the spool object.
      return { ...last, delivered: outcomes.delivered + before + (last?.delivered ?? 0) };
    },
    async restart() {
      const queued = (await this.stats()).queued;
      before += last.delivered;
      await worker.kill();
      worker = await startWorker({ persistDir: dir, vars });
      return `workerd killed with ${queued} export(s) spooled and started again on the same state`;
    },
    close: () => worker.stop(),
  };
}

const backend = await startBackend();
const dir = await mkdtemp(join(tmpdir(), "export-retry-demo-"));
const endpoint = `${backend.url}/v1/traces`;
const target = args.runtime === "workers" ? await workersTarget(endpoint, dir) : await nodeTarget(endpoint, dir);
say(`export-retry demo (${args.runtime}): ${total} exports to ${endpoint}, spooled to ${target.where}`);

const outcomes = { delivered: 0, spooled: 0, rejected: 0, dropped: 0 };
const pending = new Set();
let sent = 0;
let phase = "healthy";
let current = { queued: 0, queuedBytes: 0, delivered: 0, dropped: 0, nextAttemptAt: null };

function payload(id) {
  const body = JSON.stringify({ id, resourceSpans: [{ name: `span-${id}`, pad: "x".repeat(900) }] });
  return new TextEncoder().encode(body);
}

function exportOne() {
  const id = sent++;
  const p = target.export(payload(id)).then(
    (r) => (outcomes[r.outcome] += 1),
    (err) => say(`  export ${id} failed: ${err.message}`),
  ).finally(() => pending.delete(p));
  pending.add(p);
}

function status() {
  const s = current;
  const next = s.nextAttemptAt == null ? "-" : `${Math.max(0, (s.nextAttemptAt - Date.now()) / 1000).toFixed(1)} s`;
  return `[${phase.padEnd(8)}] sent ${String(sent).padStart(3)} | delivered ${String(s.delivered).padStart(3)} | ` +
    `queued ${String(s.queued).padStart(3)} (${s.queuedBytes} B) | next retry ${next} | dropped ${s.dropped}`;
}

let lastPrinted = 0;
let polling = false;
const ticker = setInterval(async () => {
  if (polling) return;
  polling = true;
  current = await target.stats();
  polling = false;
  if (tty) process.stdout.write(`\r\x1b[K${status()}`);
  else if (Date.now() - lastPrinted >= 1000) {
    lastPrinted = Date.now();
    console.log(status());
  }
}, 150);

async function exportsFor(count, everyMs) {
  for (let i = 0; i < count; i++) {
    exportOne();
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function until(what, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const quarter = Math.floor(total / 4);
let failed;
try {
  say("phase 1: healthy endpoint");
  await exportsFor(quarter, 20);

  phase = "outage";
  say("phase 2: the endpoint answers 503, then refuses connections");
  await backend.setMode("503");
  await exportsFor(quarter, 40);
  await backend.setMode("refuse");
  await exportsFor(quarter, 40);
  await Promise.all(pending);

  phase = "restart";
  say(`phase 3: restart with ${(await target.stats()).queued} export(s) spooled`);
  say(`         ${await target.restart()}`);

  phase = "recovery";
  say("phase 4: the endpoint is back");
  await backend.setMode("ok");
  await exportsFor(total - 3 * quarter, 20);
  await Promise.all(pending);
  await until("the backlog to drain", async () => {
    const s = await target.stats();
    return s.queued === 0 && s.inFlight === 0;
  }, 60_000);
  current = await target.stats();
} catch (err) {
  failed = err;
} finally {
  clearInterval(ticker);
}

say(status());
await target.close();
await backend.close();

const received = new Set(backend.delivered.map((r) => JSON.parse(r.body.toString("utf8")).id));
const duplicates = backend.delivered.length - received.size;
const lost = total - received.size - outcomes.dropped - outcomes.rejected;
await rm(dir, { recursive: true, force: true });
if (failed) say(`demo: ${failed.message}`);
say(`backend: ${backend.counts.total} requests, ${backend.delivered.length} accepted, ${duplicates} duplicate(s)`);
say(`sent ${total}, delivered ${received.size}, dropped ${outcomes.dropped}, lost ${lost}`);
process.exitCode = !failed && lost === 0 && received.size === total ? 0 : 1;
