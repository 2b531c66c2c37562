/**
 * The soak's exporting process: exports payloads numbered from START_ID to the
 * loopback endpoint through a FileStorage spool, several at a time, forever (until
 * killed), or with DRAIN_ONLY=1 waits for the recovered backlog to drain and exits.
 * Prints one line per event: `S <id>` before an export starts, `O <id> <outcome>`
 * when it resolves, `L <message>` for each log line, `DONE <stats json>` at the end.
 */
import { createExporter, FileStorage } from "export-retry/node";

const { SOAK_URL, SOAK_DIR, START_ID = "0", DRAIN_ONLY } = process.env;
const out = (line) => process.stdout.write(`${line}\n`);
const exporter = await createExporter({
  endpoint: SOAK_URL,
  headers: { Authorization: "Bearer soak-secret" },
  storage: new FileStorage({ dir: SOAK_DIR }),
  immediateRetryDelayMs: 20,
  initialDelayMs: 20,
  maxDelayMs: 300,
  timeoutMs: 500,
  logIntervalMs: 0,
  logger: { warn: (m) => out(`L warn ${m}`), error: (m) => out(`L error ${m}`) },
});

if (DRAIN_ONLY) {
  const deadline = Date.now() + 60_000;
  while (exporter.stats().queued > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await exporter.shutdown();
  out(`DONE ${JSON.stringify(exporter.stats())}`);
} else {
  let id = Number(START_ID);
  const exportOne = async () => {
    for (;;) {
      const mine = id++;
      out(`S ${mine}`);
      const body = new TextEncoder().encode(JSON.stringify({ id: mine, pad: "x".repeat(500) }));
      const r = await exporter.export(body, { contentType: "application/json" });
      out(`O ${mine} ${r.outcome}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, exportOne));
}
