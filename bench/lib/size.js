/**
 * Size and start: the .wasm raw and gzipped (level 9), the JS the Node entry loads
 * gzipped, and the time to compile and instantiate the module in fresh processes.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { median, summary } from "./stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const child = fileURLToPath(new URL("./child.js", import.meta.url));
const gz = (buf) => gzipSync(buf, { level: 9 }).length;

/** Files reached from `entry` through relative static imports (JS only), in load order. */
function moduleGraph(entry) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/(?:import|export)\s*(?:[^"';]*?\sfrom\s*)?["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = resolve(dirname(file), m[1]);
      if (target.endsWith(".js")) visit(target);
    }
  };
  visit(entry);
  return [...seen];
}

export async function size({ quick, progress }) {
  const wasm = readFileSync(join(root, "pkg/export_retry_bg.wasm"));
  const entries = {};
  for (const [name, entry] of [["export-retry", "js/index.node.js"], ["export-retry/node", "js/node.js"], ["export-retry/workers", "js/workers.js"]]) {
    const files = moduleGraph(join(root, entry));
    const all = Buffer.concat(files.map((f) => readFileSync(f)));
    entries[name] = {
      files: files.map((f) => relative(root, f)),
      raw: all.length,
      gzip: gz(all),
    };
  }
  const runs = quick ? 7 : 15;
  progress(`size and start: ${runs} fresh processes each for the module and for the entry`);
  const run = promisify(execFile);
  const wasmRuns = [];
  const entryRuns = [];
  for (let i = 0; i < runs; i++) {
    wasmRuns.push(JSON.parse((await run(process.execPath, [child, "wasm"], { cwd: root })).stdout));
    entryRuns.push(JSON.parse((await run(process.execPath, [child, "entry"], { cwd: root })).stdout));
  }
  const pick = (k) => summary(wasmRuns.map((r) => r[k]));
  return {
    wasm: { raw: wasm.length, gzip: gz(wasm) },
    js: entries,
    start: {
      runs,
      compile: pick("compile"),
      instantiate: pick("instantiate"),
      compileAndInstantiate: summary(wasmRuns.map((r) => r.compile + r.instantiate)),
      glueImport: pick("glueImport"),
      entryImport: summary(entryRuns.map((r) => r.entry)),
    },
    medianCompileAndInstantiate: median(wasmRuns.map((r) => r.compile + r.instantiate)),
  };
}
