/**
 * Crash soak: a child process exports continuously to the loopback endpoint while
 * the endpoint goes down and up at random; the harness kills the child with SIGKILL
 * at random moments and restarts it on the same spool. At the end a last child
 * drains the backlog and the harness checks that every export that resolved
 * `delivered` or `spooled` reached the endpoint, and that every `dropped` one was
 * logged. Duplicates are counted (delivery is at-least-once). With --workers N, the
 * same story runs with workerd (the example Worker) killed and restarted N times.
 *
 *   node tests/soak/soak.js [--kills 20] [--workers 20] [--seed 1]
 * Exits 1 if anything promised was lost. Bounded: a few minutes at the defaults.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startBackend } from "../support/backend.js";
import { startWorker } from "../support/wrangler.js";

const { values } = parseArgs({
  options: {
    kills: { type: "string", default: "20" },
    workers: { type: "string", default: "0" },
    seed: { type: "string", default: String(Date.now() % 100000) },
  },
});
let seed = Number(values.seed);
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const child = fileURLToPath(new URL("./child.js", import.meta.url));

const backend = await startBackend();
let flipping = true;
const flipper = (async () => {
  while (flipping) {
    const mode = random() < 0.5 ? "ok" : random() < 0.5 ? "503" : "refuse";
    await backend.setMode(mode);
    await sleep(between(100, 600));
  }
})();

/** How often each id of [from, to) reached the endpoint. */
const deliveredIds = (from, to) => {
  const counts = new Map();
  for (const r of backend.delivered) {
    const id = JSON.parse(r.body.toString("utf8")).id;
    if (id >= from && id < to) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
};

function summarize(name, outcomes, logs, kills, [from, to]) {
  const counts = deliveredIds(from, to);
  const promised = [...outcomes].filter(([, o]) => o === "delivered" || o === "spooled").map(([id]) => id);
  const lost = promised.filter((id) => !counts.has(id));
  const dropped = [...outcomes].filter(([, o]) => o === "dropped").length;
  const dropLogs = logs.filter((m) => /dropping/i.test(m)).length;
  const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  const started = outcomes.started;
  console.log(`${name}: ${kills} kills survived; ${started} exports started, ${outcomes.size} resolved ` +
    `(${promised.length} delivered or spooled, ${dropped} dropped), ${started - outcomes.size} in flight at a kill; ` +
    `${counts.size} distinct delivered, ${duplicates} duplicate(s), lost ${lost.length}` +
    (dropped ? `; drop log lines ${dropLogs}` : ""));
  if (lost.length) console.log(`  lost ids: ${lost.slice(0, 20).join(", ")}`);
  return lost.length === 0 && (dropped === 0 || dropLogs > 0);
}

async function nodeSoak(kills) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-soak-"));
  const outcomes = new Map();
  outcomes.started = 0;
  const logs = [];
  let nextId = 0;
  const run = (env) => {
    const proc = spawn(process.execPath, [child], { env: { ...process.env, SOAK_URL: `${backend.url}/v1/traces`, SOAK_DIR: dir, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    const done = new Promise((resolve) => proc.once("exit", resolve));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const [kind, a, b] = line.split(" ");
      if (kind === "S") {
        outcomes.started += 1;
        nextId = Math.max(nextId, Number(a) + 1);
      } else if (kind === "O") outcomes.set(Number(a), b);
      else if (kind === "L") logs.push(line.slice(2));
      else if (kind === "DONE") console.log(`  final drain: ${line.slice(5)}`);
    });
    return { proc, done };
  };
  for (let k = 0; k < kills; k++) {
    const { proc, done } = run({ START_ID: String(nextId) });
    await sleep(between(200, 1200));
    proc.kill("SIGKILL");
    await done;
  }
  flipping = false;
  await flipper;
  await backend.setMode("ok");
  const { done } = run({ DRAIN_ONLY: "1" });
  await done;
  await rm(dir, { recursive: true, force: true });
  return summarize("node", outcomes, logs, kills, [0, 1_000_000]);
}

async function workersSoak(kills) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-soak-workerd-"));
  const outcomes = new Map();
  outcomes.started = 0;
  let nextId = 1_000_000;
  const vars = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `${backend.url}/v1/traces`,
    EXPORT_RETRY_OPTIONS: JSON.stringify({ immediateRetryDelayMs: 20, initialDelayMs: 50, maxDelayMs: 300, timeoutMs: 500 }),
  };
  flipping = true;
  const flipper2 = (async () => {
    while (flipping) {
      await backend.setMode(random() < 0.5 ? "ok" : "503");
      await sleep(between(100, 600));
    }
  })();
  for (let k = 0; k < kills; k++) {
    const worker = await startWorker({ persistDir: dir, vars });
    let live = true;
    const loops = Array.from({ length: 4 }, async () => {
      while (live) {
        const id = nextId++;
        outcomes.started += 1;
        const body = JSON.stringify({ id, pad: "x".repeat(500) });
        try {
          const r = await worker.export(new TextEncoder().encode(body), "application/json");
          outcomes.set(id, r.outcome);
        } catch {
          // killed mid-request: never resolved for the caller
        }
      }
    });
    await sleep(between(500, 2000));
    live = false;
    await worker.kill();
    await Promise.all(loops);
  }
  flipping = false;
  await flipper2;
  await backend.setMode("ok");
  const last = await startWorker({ persistDir: dir, vars });
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const stats = await last.spoolStats();
    if (stats.every((s) => s.queued === 0)) break;
    await sleep(200);
  }
  await last.stop();
  await rm(dir, { recursive: true, force: true });
  return summarize("workerd", outcomes, [], kills, [1_000_000, Infinity]);
}

let ok = true;
console.log(`soak: seed ${values.seed}`);
if (Number(values.kills) > 0) ok = (await nodeSoak(Number(values.kills))) && ok;
if (Number(values.workers) > 0) ok = (await workersSoak(Number(values.workers))) && ok;
flipping = false;
await flipper;
await backend.close();
console.log(ok ? "soak: nothing promised was lost" : "soak: LOST exports (see above)");
process.exitCode = ok ? 0 : 1;
