/**
 * Depth: per-export spool cost and per-record drain cost at spool depths 10, 1,000
 * and 50,000. One exporter per depth, all alive at once, rounds rotating between them
 * (so machine noise falls on every depth alike). A round at depth D:
 *   1. the fetch fails at once: K new exports are spooled, each timed (D -> D + K);
 *   2. the fetch succeeds: one new export is delivered (the probe: the backoff resets);
 *   3. one drain pass with drainBudget K, timed: the K oldest records are read, checked,
 *      sent and deleted (D + K -> D).
 * The fetch is a stub (no network) and the scheduler never fires (no stray passes),
 * so the figures are the engine's and the storage adapter's alone. 1 KiB payloads.
 * MemoryStorage isolates the engine; FileStorage (one fsynced file per record) adds
 * the file system. --quick stops FileStorage at 1,000: the 50,000-file fill costs
 * 50,000 fsyncs (about 20 s where an fsync costs 1 ms, minutes on slower disks).
 */
import { createExporter, MemoryStorage } from "export-retry";
import { FileStorage } from "export-retry/node";
import { payload, quietLogger, removeDir, tempDir } from "./common.js";
import { median, summary } from "./stats.js";

const SIZE = 1024;
const K = 10;

export async function depth({ quick, progress }) {
  const out = {};
  out.memory = await series("memory", [10, 1000, 50_000], quick ? 25 : 80, progress);
  out.file = await series("file", quick ? [10, 1000] : [10, 1000, 50_000], quick ? 10 : 30, progress);
  return out;
}

async function series(kind, depths, rounds, progress) {
  const body = payload(SIZE);
  const probeBody = payload(16);
  const subjects = [];
  const dirs = [];
  try {
    for (const d of depths) {
      progress(`depth (${kind}): filling a spool to ${d}`);
      let dir;
      if (kind === "file") dirs.push((dir = await tempDir(`depth${d}`)));
      const stub = { failing: true, sent: 0 };
      const exporter = await createExporter({
        endpoint: "http://127.0.0.1:9/v1/traces",
        storage: kind === "file" ? new FileStorage({ dir }) : new MemoryStorage(),
        fetch: async () => {
          if (stub.failing) throw new TypeError("fetch failed");
          stub.sent++;
          return { status: 200, headers: { get: () => null }, body: null };
        },
        scheduler: { schedule() {}, cancel() {} },
        immediateRetryDelayMs: 0,
        drainBudget: K,
        logger: quietLogger(),
      });
      const batch = kind === "file" ? 32 : 500;
      for (let i = 0; i < d; i += batch) {
        const rs = await Promise.all(Array.from({ length: Math.min(batch, d - i) }, () => exporter.export(body)));
        if (rs.some((r) => r.outcome !== "spooled")) throw new Error("depth: a fill export was not spooled");
      }
      if (exporter.stats().queued !== d) throw new Error(`depth: queued ${exporter.stats().queued}, expected ${d}`);
      subjects.push({ depth: d, exporter, stub, spool: [], drain: [] });
    }
    progress(`depth (${kind}): ${rounds} rounds of ${K} spooled + ${K} drained at each depth`);
    for (let r = 0; r < rounds; r++) {
      for (let j = 0; j < subjects.length; j++) {
        const s = subjects[(r + j) % subjects.length];
        s.stub.failing = true;
        for (let i = 0; i < K; i++) {
          const t0 = performance.now();
          const res = await s.exporter.export(body);
          const dt = performance.now() - t0;
          if (res.outcome !== "spooled") throw new Error(`depth: export ${res.outcome}`);
          if (r > 0) s.spool.push(dt);
        }
        s.stub.failing = false;
        const probe = await s.exporter.export(probeBody);
        if (probe.outcome !== "delivered") throw new Error(`depth: probe ${probe.outcome}`);
        const before = s.stub.sent;
        const t0 = performance.now();
        await s.exporter.drain();
        const dt = performance.now() - t0;
        const sent = s.stub.sent - before;
        if (sent !== K) throw new Error(`depth ${s.depth}: a drain pass sent ${sent}, expected ${K}`);
        if (r > 0) s.drain.push(dt / K);
        if (s.exporter.stats().queued !== s.depth) throw new Error(`depth: queued ${s.exporter.stats().queued} after a round`);
      }
    }
    const base = subjects[0];
    return subjects.map((s) => ({
      depth: s.depth,
      spool: summary(s.spool),
      drain: summary(s.drain),
      spoolVsShallowest: median(s.spool) / median(base.spool),
      drainVsShallowest: median(s.drain) / median(base.drain),
    }));
  } finally {
    for (const s of subjects) await s.exporter.shutdown();
    for (const d of dirs) await removeDir(d);
  }
}
