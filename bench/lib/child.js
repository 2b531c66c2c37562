/**
 * What the benchmarks run in fresh processes; each mode prints one JSON line.
 *   node bench/lib/child.js wasm          compile + instantiate the module alone (ms)
 *   node bench/lib/child.js entry         import("export-retry") as a user does (ms)
 *   node bench/lib/child.js reopen DIR    a new exporter on a FileStorage dir: what it recovered
 */
import { readFileSync } from "node:fs";

const mode = process.argv[2];
if (mode === "wasm") {
  const t0 = performance.now();
  const bytes = readFileSync(new URL("../../pkg/export_retry_bg.wasm", import.meta.url));
  const t1 = performance.now();
  const glue = await import("../../pkg/export_retry.js");
  const t2 = performance.now();
  const module = new WebAssembly.Module(bytes);
  const t3 = performance.now();
  glue.initSync({ module });
  const t4 = performance.now();
  console.log(JSON.stringify({ read: t1 - t0, glueImport: t2 - t1, compile: t3 - t2, instantiate: t4 - t3 }));
} else if (mode === "entry") {
  const t0 = performance.now();
  await import("export-retry");
  const t1 = performance.now();
  console.log(JSON.stringify({ entry: t1 - t0 }));
} else if (mode === "reopen") {
  const { createExporter } = await import("export-retry");
  const { FileStorage } = await import("export-retry/node");
  const exporter = await createExporter({
    endpoint: "http://127.0.0.1:9/v1/traces",
    storage: new FileStorage({ dir: process.argv[3] }),
    fetch: () => Promise.reject(new TypeError("fetch failed")),
    logger: { warn() {}, error() {} },
  });
  const { queued, queuedBytes } = exporter.stats();
  await exporter.shutdown();
  console.log(JSON.stringify({ queued, queuedBytes }));
} else {
  throw new Error(`unknown mode ${mode}`);
}
