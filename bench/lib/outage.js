/**
 * Sustained outage: how long a new export takes while the spool is backing off,
 * against Logfire's `OTLPExporterHttpSession.post` on the same endpoint state, in
 * alternating rounds. The endpoint answers 503, then refuses connections.
 * export-retry: the outage's first export makes its two attempts (1 s apart) and is
 * spooled; from then on the drain is waiting out a backoff, so each new export is a
 * probe (one attempt, then a FileStorage write with fsync). Logfire: every post makes
 * an attempt, sleeps 1 s, makes a second attempt, then writes the body to its
 * DiskRetryer's directory and raises.
 */
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { payload, quietLogger, removeDir, tempDir } from "./common.js";
import { median, summary } from "./stats.js";

const SIZE = 10 * 1024;

export async function outage({ backend, logfire, quick, progress }) {
  const results = [];
  const rounds = quick ? 3 : 8;
  const perRound = 10;
  for (const mode of ["503", "refuse"]) {
    progress(`outage (${mode}): ${rounds} rounds of ${perRound} export-retry exports and 1 Logfire post`);
    await backend.setMode(mode);
    backend.reset();
    const dir = await tempDir("outage");
    const logger = quietLogger();
    const exporter = await createExporter({ endpoint: `${backend.url}/v1/traces/er-outage`, storage: new FileStorage({ dir }), logger });
    const body = payload(SIZE);
    const er = [];
    const attempts = {};
    const outcomes = {};
    let lf = [];
    const lfOutcomes = {};
    try {
      let t0 = performance.now();
      const first = await exporter.export(body);
      const firstMs = performance.now() - t0;
      if (logfire) await logfire.call("reset_session");
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < perRound; i++) {
          t0 = performance.now();
          const res = await exporter.export(body);
          er.push(performance.now() - t0);
          attempts[res.attempts] = (attempts[res.attempts] ?? 0) + 1;
          outcomes[res.outcome] = (outcomes[res.outcome] ?? 0) + 1;
        }
        if (logfire) {
          const p = await logfire.call("post", { url: `${backend.url}/v1/traces/lf-outage`, size: SIZE, n: 1 });
          lf.push(...p.samples);
          for (const [k, v] of Object.entries(p.outcomes)) lfOutcomes[k] = (lfOutcomes[k] ?? 0) + v;
        }
      }
      const stats = exporter.stats();
      results.push({
        mode,
        size: SIZE,
        firstExport: { ms: firstMs, outcome: first.outcome, attempts: first.attempts },
        probe: summary(er),
        probeAttempts: attempts,
        probeOutcomes: outcomes,
        spooled: stats.spooled,
        logfire: logfire ? { post: summary(lf), outcomes: lfOutcomes } : undefined,
        ratio: logfire ? median(er) / median(lf) : undefined,
        requestsSeen: backend.counts,
      });
    } finally {
      await exporter.shutdown();
      if (logfire) await logfire.call("reset_session");
      await removeDir(dir);
    }
  }
  await backend.setMode("ok");
  return results;
}
