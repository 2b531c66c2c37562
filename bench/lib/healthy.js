/**
 * Healthy endpoint: `exporter.export(body)` against a bare `fetch` POST of the same
 * body, interleaved in one process (the order rotates every round), per body size.
 * A third arm is a bare fetch with the two extra init fields the exporter sets on
 * every POST (`signal: AbortSignal.timeout(...)`, `redirect: "manual"`), to show how
 * much of the overhead is those fields rather than the engine.
 */
import { createExporter, MemoryStorage } from "export-retry";
import { barePost, connections, payload, quietLogger } from "./common.js";
import { interleave, median, summary } from "./stats.js";

const SIZES = [1024, 64 * 1024, 1024 * 1024];

export async function healthy({ backend, logfire, quick, progress }) {
  await backend.setMode("ok");
  const url = `${backend.url}/v1/traces`;
  const logger = quietLogger();
  const exporter = await createExporter({ endpoint: url, storage: new MemoryStorage(), logger });
  const results = [];
  try {
    for (const size of SIZES) {
      const body = payload(size);
      const n = size >= 1024 * 1024 ? (quick ? 60 : 300) : size >= 64 * 1024 ? (quick ? 300 : 1500) : (quick ? 400 : 2500);
      progress(`healthy ${size} B: ${n} rounds of export / fetch / fetch+init`);
      const outcomes = {};
      const opened = connections.opened;
      const samples = await interleave({
        export: async () => {
          const r = await exporter.export(body);
          outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
        },
        fetch: () => barePost(url, body),
        fetchInit: async () => {
          const res = await fetch(url, {
            method: "POST", body, headers: { "content-type": "application/x-protobuf" },
            redirect: "manual", signal: AbortSignal.timeout(10_000),
          });
          res.body?.cancel().catch(() => {});
        },
      }, { n, warmup: Math.min(100, n / 5), between: () => backend.reset() });
      if (outcomes.delivered !== Object.values(outcomes).reduce((a, b) => a + b, 0)) {
        throw new Error(`healthy: not every export was delivered: ${JSON.stringify(outcomes)}`);
      }
      const paired = samples.export.map((e, i) => e / samples.fetch[i]);
      const result = {
        size,
        rounds: n,
        connectionsOpened: connections.opened - opened,
        export: summary(samples.export),
        fetch: summary(samples.fetch),
        fetchWithExporterInit: summary(samples.fetchInit),
        overhead: median(samples.export) / median(samples.fetch) - 1,
        overheadVsFetchWithInit: median(samples.export) / median(samples.fetchInit) - 1,
        pairedRatioMedian: median(paired),
      };
      if (logfire) {
        // Informational: Logfire's exporter session against a bare requests.Session, in Python.
        const m = size >= 1024 * 1024 ? (quick ? 20 : 60) : (quick ? 100 : 300);
        const lf = { post: [], bare: [] };
        for (let i = 0; i < 10; i++) {
          const a = await logfire.call("post", { url, size, n: m / 10 });
          const b = await logfire.call("bare_post", { url, size, n: m / 10 });
          lf.post.push(...a.samples);
          lf.bare.push(...b.samples);
          backend.reset();
        }
        result.logfire = {
          post: summary(lf.post),
          requestsPost: summary(lf.bare),
          overhead: median(lf.post) / median(lf.bare) - 1,
        };
      }
      results.push(result);
    }
  } finally {
    await exporter.shutdown();
  }
  return results;
}
