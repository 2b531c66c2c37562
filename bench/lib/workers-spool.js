/**
 * Spool write in Durable Object storage, in real workerd (`wrangler dev` of
 * bench/workers/): per 64 KiB export, the SpoolObject's spool() RPC against a raw
 * SQLite insert RPC of the same bytes, each minus an empty RPC (what both pay for the
 * call). Timed from Node around batches of sequential RPCs; arms interleaved. Time in
 * workerd itself does not advance during synchronous work, so it is not used.
 */
import { startWorker } from "../../tests/support/wrangler.js";
import { removeDir, tempDir } from "./common.js";
import { interleave, median, summary } from "./stats.js";

const SIZE = 64 * 1024;

export async function workersSpool({ quick, progress }) {
  const persist = await tempDir("workerd");
  progress("spool write (Durable Object): starting wrangler dev");
  const worker = await startWorker({ persistDir: persist, config: "bench/workers/wrangler.toml" });
  const call = async (arm, n) => {
    const res = await worker.fetch(`/bench?arm=${arm}&n=${n}&size=${SIZE}`);
    if (!res.ok) throw new Error(`bench worker answered ${res.status}: ${await res.text()}`);
    return (await res.json()).outcomes;
  };
  try {
    const n = 25;
    const rounds = quick ? 4 : 12;
    progress(`spool write (Durable Object): ${rounds} rounds of ${n} RPCs per arm`);
    const outcomes = {};
    const samples = await interleave({
      spool: async () => Object.assign(outcomes, await call("spool", n)),
      raw: () => call("raw", n),
      empty: () => call("empty", n),
    }, { n: rounds, warmup: 1 });
    if (!outcomes.spooled) throw new Error(`DO spool: outcomes ${JSON.stringify(outcomes)}\n${worker.output}`);
    const per = (arm) => (median(samples[arm]) - median(samples.empty)) / n;
    return {
      size: SIZE,
      rpcsPerBatch: n,
      rounds,
      batches: { spool: summary(samples.spool), raw: summary(samples.raw), empty: summary(samples.empty) },
      spoolPerExport: per("spool"),
      rawPerWrite: per("raw"),
      ratio: per("spool") / per("raw"),
      outcomes,
    };
  } finally {
    await worker.stop();
    await removeDir(persist);
  }
}
