/**
 * Runs the OpenTelemetry example Worker (examples/otel-wrangler.toml) in real
 * workerd through `wrangler dev`, for tests/js/otel-workers.test.js. The spawn
 * logic is that of tests/support/wrangler.js; the config is copied into the
 * instance's own directory (with `main` made absolute) so that wrangler's
 * `.wrangler/` scratch directory lands there, not in examples/.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitUntil } from "./wait.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const wranglerBin = `${root}node_modules/.bin/wrangler`;

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts `wrangler dev` of the example and resolves once the Worker answers.
 * @param {{ dir: string, vars?: Record<string, string>, readyTimeoutMs?: number }} options
 *   `dir`: this instance's directory (config copy, scratch files, persisted state)
 */
export async function startOtelWorker({ dir, vars = {}, readyTimeoutMs = 90_000 }) {
  const toml = await readFile(join(root, "examples", "otel-wrangler.toml"), "utf8");
  const main = join(root, "examples", "otel-worker.js");
  const config = join(dir, "wrangler.toml");
  if (!/^main = "otel-worker\.js"$/m.test(toml)) throw new Error("examples/otel-wrangler.toml: expected main = \"otel-worker.js\"");
  await writeFile(config, toml.replace(/^main = "otel-worker\.js"$/m, `main = ${JSON.stringify(main)}`));

  const port = await freePort();
  const args = ["dev", "--config", config, "--ip", "127.0.0.1", "--port", String(port),
    "--persist-to", join(dir, "state"), "--show-interactive-dev-session=false", "--log-level", "warn"];
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);
  const child = spawn(wranglerBin, args, {
    cwd: dir,
    detached: true, // its own process group, so workerd goes down with it
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk) => {
    output = (output + chunk).slice(-20_000);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => (gone = true));

  const url = `http://127.0.0.1:${port}`;
  const worker = {
    url,
    get output() {
      return output;
    },
    /** fetch a path of the Worker. */
    fetch: (path, init) => fetch(`${url}${path}`, init),
    /** The spool objects' stats, through the example's GET /stats. */
    async spoolStats() {
      const res = await fetch(`${url}/stats`);
      if (!res.ok) throw new Error(`GET /stats answered ${res.status}: ${await res.text()}`);
      return res.json();
    },
    /** Stops it politely, then forcefully after a deadline. */
    async stop() {
      if (gone) return;
      process.kill(-child.pid, "SIGTERM");
      const timer = setTimeout(() => !gone && process.kill(-child.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await waitUntil(async () => {
      if (gone) throw new Error(`wrangler dev exited early:\n${output}`);
      try {
        const res = await fetch(`${url}/__ready`); // a 404 route (traced like any request)
        await res.body?.cancel();
        return res.status > 0;
      } catch {
        return false;
      }
    }, { timeoutMs: readyTimeoutMs, intervalMs: 200, what: `wrangler dev on port ${port}` });
  } catch (err) {
    if (!gone) process.kill(-child.pid, "SIGKILL");
    await exited;
    err.message += `\n--- wrangler output ---\n${output}`;
    throw err;
  }
  return worker;
}
