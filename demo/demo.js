/**
 * The demonstration (`npm run demo`): 200 exports to a local endpoint through an
 * outage, a restart and a recovery, spooled to files and drained in the end.
 *
 *   healthy   exports are delivered at once
 *   outage    the endpoint answers 503, then refuses connections: exports are
 *             spooled to disk, the warning appears, the backlog grows
 *   restart   the exporter is shut down and a new one opens the same directory
 *   recovery  the endpoint comes back: the backlog drains, oldest first
 *
 * It ends with `sent N, delivered N, dropped 0, lost 0` and exit status 0, or
 * says what was lost and exits 1. Options: --exports N (default 200).
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createExporter, FileStorage } from "export-retry/node";
import { startBackend } from "../tests/support/backend.js";

const { values: args } = parseArgs({ options: { exports: { type: "string", default: "200" } } });
const total = Number(args.exports);
if (!Number.isInteger(total) || total < 8) {
  console.error(`demo: --exports must be a whole number >= 8, got ${args.exports}`);
  process.exit(2);
}

const tty = process.stdout.isTTY;
const say = (line) => {
  if (tty) process.stdout.write("\r\x1b[K");
  console.log(line);
};
const logger = { warn: (m) => say(`  warn  ${m}`), error: (m) => say(`  error ${m}`) };

const backend = await startBackend();
const dir = await mkdtemp(join(tmpdir(), "export-retry-demo-"));
const endpoint = `${backend.url}/v1/traces`;
// The embedded defaults, with the backoff cap lowered from 128 s to 4 s and the
// warning interval from 60 s to 5 s so the story fits in half a minute.
const options = {
  endpoint,
  headers: { Authorization: "Bearer demo-token" },
  storage: new FileStorage({ dir }),
  maxDelayMs: 4_000,
  logIntervalMs: 5_000,
  logger,
};
say(`export-retry demo: ${total} exports to ${endpoint}, spool in ${dir}`);
let exporter = await createExporter(options);

const outcomes = { delivered: 0, spooled: 0, rejected: 0, dropped: 0 };
const pending = new Set();
let sent = 0;
let phase = "healthy";
let deliveredBeforeRestart = 0;

function payload(id) {
  const body = JSON.stringify({ id, resourceSpans: [{ name: `span-${id}`, pad: "x".repeat(900) }] });
  return new TextEncoder().encode(body);
}

function exportOne() {
  const id = sent++;
  const p = exporter.export(payload(id), { contentType: "application/json" }).then((r) => {
    outcomes[r.outcome] += 1;
    pending.delete(p);
  });
  pending.add(p);
}

function status() {
  const s = exporter.stats();
  const next = s.nextAttemptAt === null ? "-" : `${Math.max(0, (s.nextAttemptAt - Date.now()) / 1000).toFixed(1)} s`;
  const delivered = deliveredBeforeRestart + s.delivered;
  return `[${phase.padEnd(8)}] sent ${String(sent).padStart(3)} | delivered ${String(delivered).padStart(3)} | ` +
    `queued ${String(s.queued).padStart(3)} (${s.queuedBytes} B) | next retry ${next} | dropped ${s.dropped}`;
}

const ticker = setInterval(() => {
  if (tty) process.stdout.write(`\r\x1b[K${status()}`);
}, 100);
let lastPrinted = 0;
const plain = setInterval(() => {
  if (!tty && Date.now() - lastPrinted >= 1000) {
    lastPrinted = Date.now();
    console.log(status());
  }
}, 250);

async function exportsFor(count, everyMs) {
  for (let i = 0; i < count; i++) {
    exportOne();
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function until(what, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const quarter = Math.floor(total / 4);
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
  say(`phase 3: restart: shutting the exporter down with ${exporter.stats().queued} export(s) spooled on disk`);
  await exporter.shutdown();
  deliveredBeforeRestart = exporter.stats().delivered;
  const files = (await readdir(dir)).length;
  exporter = await createExporter(options);
  say(`         a new exporter on the same directory found ${exporter.stats().queued} spooled export(s) (${files} file(s))`);

  phase = "recovery";
  say("phase 4: the endpoint is back");
  await backend.setMode("ok");
  await exportsFor(total - 3 * quarter, 20);
  await Promise.all(pending);
  await until("the backlog to drain", () => exporter.stats().queued === 0 && exporter.stats().inFlight === 0, 60_000);
} finally {
  clearInterval(ticker);
  clearInterval(plain);
}

say(status());
await exporter.shutdown();
await backend.close();

const received = new Set(backend.delivered.map((r) => JSON.parse(r.body.toString("utf8")).id));
const duplicates = backend.delivered.length - received.size;
const lost = total - received.size - outcomes.dropped - outcomes.rejected;
const leftOnDisk = (await readdir(dir)).length;
await rm(dir, { recursive: true, force: true });
say(`backend: ${backend.counts.total} requests, ${backend.delivered.length} accepted, ${duplicates} duplicate(s); spool files left: ${leftOnDisk}`);
say(`sent ${total}, delivered ${received.size}, dropped ${outcomes.dropped}, lost ${lost}`);
process.exitCode = lost === 0 && received.size === total && leftOnDisk === 0 ? 0 : 1;
