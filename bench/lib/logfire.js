/**
 * Drives bench/logfire_side.py (the Logfire SDK's own retry classes) from Node:
 * one JSON command per line on its stdin, one answer per line on its stdout.
 */
import { spawn, execFile } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const script = fileURLToPath(new URL("../logfire_side.py", import.meta.url));

export async function startLogfire(python) {
  const child = spawn(python, ["-u", script], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const pending = new Map();
  let nextId = 1;
  let exited = false;
  child.on("exit", (code, signal) => {
    exited = true;
    for (const { reject } of pending.values()) {
      reject(new Error(`logfire_side.py exited (${code ?? signal})\n${stderr}`));
    }
    pending.clear();
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    const msg = JSON.parse(line);
    const waiter = pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.ok) waiter.resolve(msg);
    else waiter.reject(new Error(`logfire_side.py: ${msg.error}\n${stderr.slice(-4000)}`));
  });
  const call = (cmd, args = {}) => new Promise((resolve, reject) => {
    if (exited) return reject(new Error(`logfire_side.py is not running\n${stderr}`));
    const id = nextId++;
    pending.set(id, { resolve, reject });
    child.stdin.write(`${JSON.stringify({ id, cmd, args })}\n`);
  });
  const info = await call("info");
  return {
    info,
    call,
    get stderr() {
      return stderr;
    },
    async close() {
      if (exited) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await new Promise((resolve) => child.once("exit", resolve));
      clearTimeout(timer);
    },
  };
}

/** Runs the restart probe in a process of its own; resolves its two JSON lines. */
export async function restartProbe(python, url, n) {
  const { stdout } = await promisify(execFile)(python, ["-u", script, "--restart-probe", url, String(n)], { timeout: 120_000 });
  const [first, second] = stdout.trim().split("\n").map((l) => JSON.parse(l));
  return { ...first, ...second };
}
