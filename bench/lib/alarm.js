/**
 * Workers alarm drain (informational): runs bench/workers-alarm.js (real workerd
 * through `wrangler dev`, the example Worker) and collects its alarm runs: how long
 * one SpoolObject alarm takes to send a full budget of 40 records of 10 KiB to the
 * loopback endpoint.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { median, summary } from "./stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

export async function alarm({ quick, progress }) {
  const records = quick ? 120 : 400;
  progress(`workers alarm: node bench/workers-alarm.js --records ${records}`);
  const { stdout } = await promisify(execFile)(process.execPath, ["bench/workers-alarm.js", "--records", String(records)], {
    cwd: root, timeout: 300_000, maxBuffer: 10 * 1024 * 1024,
  });
  const runs = [...stdout.matchAll(/alarm run: (\d+) records in (\d+) ms/g)].map((m) => ({ sends: Number(m[1]), ms: Number(m[2]) }));
  const full = runs.filter((r) => r.sends === 40).map((r) => r.ms);
  if (full.length === 0) throw new Error(`workers-alarm.js reported no full-budget alarm run:\n${stdout}`);
  return { records, size: 10240, runs, fullBudget: summary(full), medianMs: median(full), perRecordMs: median(full) / 40 };
}
