/**
 * Spool write: the cost of spooling one 64 KiB export against a raw write of the
 * same bytes to the same storage, interleaved, every arm in its own directory of the
 * same file system:
 *   spool   the engine's spool step alone (`spool(body)` of the wasm exporter, what a
 *           failed export does once its attempts are over, and what a Workers request
 *           isolate hands to its SpoolObject): room reserved, CRC-32 of the payload,
 *           record header, one FileStorage.put, index updated.
 *   export  `exporter.export(body)` ending "spooled", with a fetch that fails at once
 *           (no network): the above plus the engine's attempt. After the first
 *           export the engine is backing off (1 h, so the drain stays asleep), and
 *           every later export is a single probe attempt.
 *   put     FileStorage.put() of a record of the same size: the adapter alone.
 *   durable the raw write with FileStorage's durability: a temp file opened "wx",
 *           written, fsynced, closed, renamed into place, and the directory fsynced.
 *   plain   fs.writeFile() with no fsync (what Logfire's DiskRetryer does:
 *           `path.write_bytes(data)` in `DiskRetryer.add_task`).
 */
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { openEngine } from "../../js/exporter.js";
import { payload, quietLogger, removeDir, tempDir } from "./common.js";
import { interleave, median, summary } from "./stats.js";

const SIZE = 64 * 1024;
/** About what the engine adds in front of the payload (content type, URL, checksums). */
const HEADER_ALLOWANCE = 96;

export async function spoolWrite({ logfire, quick, progress, refusedUrl }) {
  const root = await tempDir("spoolwrite");
  const dirs = Object.fromEntries(["spool", "export", "put", "durable", "plain"].map((k) => [k, join(root, k)]));
  const n = quick ? 80 : 300;
  progress(`spool write: ${n} rounds of spool() / export-to-spool / FileStorage.put / durable raw write / plain write (64 KiB)`);
  const body = payload(SIZE);
  const record = payload(SIZE + HEADER_ALLOWANCE);
  const failingFetch = () => Promise.reject(new TypeError("fetch failed"));
  const outcomes = {};
  const exporter = await createExporter({
    endpoint: "http://127.0.0.1:9/v1/traces",
    storage: new FileStorage({ dir: dirs.export }),
    fetch: failingFetch,
    immediateRetryDelayMs: 0,
    initialDelayMs: 3_600_000,
    maxDelayMs: 3_600_000,
    logger: quietLogger(),
  });
  // The wasm exporter itself (what createExporter wraps), for its spool() step.
  const engine = await openEngine({
    endpoint: "http://127.0.0.1:9/v1/traces",
    storage: new FileStorage({ dir: dirs.spool }),
    fetch: failingFetch,
    initialDelayMs: 3_600_000,
    maxDelayMs: 3_600_000,
    logger: quietLogger(),
  }, { scheduler: { schedule() {}, cancel() {} } });
  const spoolOutcomes = {};
  const put = new FileStorage({ dir: dirs.put });
  await put.list(""); // creates the directory, as the exporter's open() did for its own
  for (const d of [dirs.durable, dirs.plain]) await mkdir(d, { recursive: true, mode: 0o700 });
  let lf;
  try {
    const samples = await interleave({
      spool: async () => {
        const r = await engine.spool(body, { contentType: "application/x-protobuf" });
        spoolOutcomes[r.outcome] = (spoolOutcomes[r.outcome] ?? 0) + 1;
      },
      export: async () => {
        const r = await exporter.export(body);
        outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      },
      put: (i) => put.put(`rec-${String(i).padStart(8, "0")}`, record),
      durable: (i) => durableWrite(dirs.durable, `rec-${String(i).padStart(8, "0")}`, record),
      plain: (i) => writeFile(join(dirs.plain, `rec-${String(i).padStart(8, "0")}`), record),
    }, { n, warmup: 10 });
    if (outcomes.spooled !== n + 10 || spoolOutcomes.spooled !== n + 10) {
      throw new Error(`spool write: outcomes ${JSON.stringify({ outcomes, spoolOutcomes })}`);
    }
    if (logfire) {
      progress("spool write: Logfire DiskRetryer.add_task (64 KiB)");
      lf = summary((await logfire.call("spool_write", { size: SIZE, n, url: refusedUrl })).samples);
    }
    return {
      size: SIZE,
      rounds: n,
      spool: summary(samples.spool),
      export: summary(samples.export),
      put: summary(samples.put),
      durable: summary(samples.durable),
      plain: summary(samples.plain),
      ratio: median(samples.spool) / median(samples.durable),
      exportRatio: median(samples.export) / median(samples.durable),
      putRatio: median(samples.put) / median(samples.durable),
      plainRatio: median(samples.spool) / median(samples.plain),
      logfireAddTask: lf,
    };
  } finally {
    await exporter.shutdown();
    await engine.shutdown();
    await removeDir(root);
  }
}

let tmpCounter = 0;

/** The same durability as FileStorage.put, with nothing else. */
async function durableWrite(dir, key, bytes) {
  const tmp = join(dir, `.tmp-${key}-${tmpCounter++}`);
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, key));
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
