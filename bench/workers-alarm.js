/**
 * How long one spool alarm takes to drain a full budget (40 records) from the
 * loopback endpoint, in real workerd (`wrangler dev` of the example Worker).
 *   node bench/workers-alarm.js [--records 200] [--size 10240]
 * Prints each alarm run (records sent, ms) and the median of the full-budget runs.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startBackend } from "../tests/support/backend.js";
import { startWorker } from "../tests/support/wrangler.js";
import { waitUntil } from "../tests/support/wait.js";

const { values } = parseArgs({ options: { records: { type: "string", default: "200" }, size: { type: "string", default: "10240" } } });
const records = Number(values.records);
const size = Number(values.size);

const backend = await startBackend();
const dir = await mkdtemp(join(tmpdir(), "export-retry-bench-"));
const worker = await startWorker({
  persistDir: dir,
  vars: {
    OTEL_EXPORTER_OTLP_ENDPOINT: `${backend.url}/v1/traces`,
    EXPORT_RETRY_OPTIONS: JSON.stringify({ immediateRetryDelayMs: 1, initialDelayMs: 60_000, maxDelayMs: 60_000 }),
  },
});
try {
  await backend.setMode("503");
  for (let i = 0; i < records; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, records - i) }, () => worker.export(new Uint8Array(size))));
  }
  await backend.setMode("ok");
  await worker.export(new Uint8Array(16)); // a delivered probe: the spool drains now
  let stats;
  await waitUntil(async () => ([stats] = await worker.spoolStats(), stats.queued === 0), { timeoutMs: 120_000, what: "the drain" });
  const runs = stats.alarms.filter((a) => a.sends > 0);
  for (const run of runs) console.log(`alarm run: ${run.sends} records in ${run.ms} ms`);
  const full = runs.filter((r) => r.sends === 40).map((r) => r.ms).sort((a, b) => a - b);
  const median = full.length ? full[Math.floor(full.length / 2)] : NaN;
  console.log(`${records} records of ${size} B drained in ${runs.length} alarm runs; median of ${full.length} full-budget runs (40 records): ${median} ms`);
} finally {
  await worker.stop();
  await backend.close();
  await rm(dir, { recursive: true, force: true });
}
