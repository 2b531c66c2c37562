/**
 * Runs a Node child process from the repository and waits for it to exit by
 * itself: resolves `{ code, signal, stdout, stderr }`, or kills it and rejects at
 * the deadline (what the "never keeps a process alive" tests assert).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** @param {string[]} args node's arguments @param {{ env?: object, deadlineMs?: number }} options */
export function runNode(args, { env = {}, deadlineMs = 15_000 } = {}) {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d) => { stdout += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the child did not exit by itself within ${deadlineMs} ms (killed)\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, deadlineMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' (not 'exit') so that all output has been read.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
