/**
 * Runs an example Worker (wrangler.toml, or another config) in real workerd through
 * `wrangler dev`, for the Workers integration tests, the soak and the Workers demo. Each instance gets its
 * own port and persisted state directory; `kill()` stops workerd abruptly (as a
 * crash would) and a new instance on the same directory resumes that state.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { waitUntil } from "./wait.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const wranglerBin = `${root}node_modules/.bin/wrangler`;

/** A port nobody listens on right now (for a server, or a refused connection). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts `wrangler dev` and resolves once the Worker answers.
 * @param {{ persistDir: string, vars?: Record<string, string>, config?: string, readyTimeoutMs?: number }} options
 *   `config`: the wrangler config, relative to the repository (default wrangler.toml)
 */
export async function startWorker({ persistDir, vars = {}, config = "wrangler.toml", readyTimeoutMs = 90_000 }) {
  const port = await freePort();
  const args = ["dev", "--config", `${root}${config}`, "--ip", "127.0.0.1", "--port", String(port),
    "--persist-to", persistDir, "--show-interactive-dev-session=false", "--log-level", "log"];
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);
  const child = spawn(wranglerBin, args, {
    cwd: root,
    detached: true, // its own process group, so workerd goes down with it
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk) => {
    output = (output + chunk).slice(-200_000);
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
    /** POSTs a payload to the example's export route; resolves the export result. */
    async export(body, contentType = "application/x-protobuf") {
      const res = await fetch(`${url}/v1/traces`, { method: "POST", body, headers: { "content-type": contentType } });
      if (!res.ok) throw new Error(`POST /v1/traces answered ${res.status}: ${await res.text()}`);
      return res.json();
    },
    /** Stops workerd at once (SIGKILL to the whole process group), like a crash. */
    async kill() {
      if (!gone) process.kill(-child.pid, "SIGKILL");
      await exited;
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
        const res = await fetch(`${url}/__ready`); // a 404 route: it must not wake the spool object
        await res.body?.cancel();
        return res.status > 0;
      } catch {
        return false;
      }
    }, { timeoutMs: readyTimeoutMs, intervalMs: 200, what: `wrangler dev on port ${port}` });
  } catch (err) {
    await worker.kill();
    err.message += `\n--- wrangler output ---\n${output}`;
    throw err;
  }
  return worker;
}
