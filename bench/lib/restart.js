/**
 * Restart (informational): what a process restart leaves of each spool.
 * export-retry: exports spooled to FileStorage while the endpoint refuses; then a new
 * process opens an exporter on the same directory and reports what it recovered.
 * Logfire: a process posts through OTLPExporterHttpSession while the endpoint refuses
 * (each post ends in its DiskRetryer), reports its spool and exits normally; then the
 * spool directory is checked from here, and a new session's retryer is inspected.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { restartProbe } from "./logfire.js";
import { payload, quietLogger, removeDir, tempDir } from "./common.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const child = fileURLToPath(new URL("./child.js", import.meta.url));
const K = 3;

export async function restart({ python, refusedUrl, progress }) {
  progress(`restart: ${K} exports spooled by each side, then a new process`);
  const dir = await tempDir("restart");
  try {
    const exporter = await createExporter({
      endpoint: refusedUrl, storage: new FileStorage({ dir }), immediateRetryDelayMs: 0, logger: quietLogger(),
    });
    const outcomes = [];
    for (let i = 0; i < K; i++) outcomes.push((await exporter.export(payload(1024))).outcome);
    await exporter.shutdown();
    const { stdout } = await promisify(execFile)(process.execPath, [child, "reopen", dir], { cwd: root });
    const er = { spooled: outcomes.filter((o) => o === "spooled").length, recoveredByNewProcess: JSON.parse(stdout).queued };
    let lf;
    if (python) {
      const probe = await restartProbe(python, refusedUrl, K);
      lf = {
        spooled: probe.files,
        queuedInMemory: probe.tasks,
        filesBeforeExit: probe.files,
        spoolDirExistsAfterExit: existsSync(probe.dir),
        filesAfterExit: existsSync(probe.dir) ? readdirSync(probe.dir).length : 0,
        newProcessRetryerTasks: probe.freshTasks,
        newProcessUsesOtherDir: probe.freshDir !== probe.dir,
      };
    }
    return { exportRetry: er, logfire: lf };
  } finally {
    await removeDir(dir);
  }
}
