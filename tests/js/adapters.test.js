import { test, describe, mock } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, readdir, stat, writeFile, mkdir, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryStorage } from "../../js/memory-storage.js";
import { FileStorage } from "../../js/file-storage.js";
import { TimerScheduler } from "../../js/timer-scheduler.js";

const bytes = (...xs) => Uint8Array.from(xs);

/** Polls `fn` every 5 ms until truthy; fails with `what` after the deadline. */
async function waitUntil(fn, { timeoutMs = 5000, what = "condition" } = {}) {
  const deadline = performance.now() + timeoutMs;
  while (!fn()) {
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-test-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Contract checks shared by both storage adapters. */
function contractTests(makeStorage) {
  test("round trip, overwrite and missing key", async (t) => {
    const s = await makeStorage(t);
    assert.equal(await s.get("missing"), undefined);
    await s.put("k1", bytes(1, 2, 3));
    assert.deepEqual(await s.get("k1"), bytes(1, 2, 3));
    await s.put("k1", bytes(9));
    assert.deepEqual(await s.get("k1"), bytes(9));
    await s.put("empty", new Uint8Array(0));
    assert.deepEqual(await s.get("empty"), new Uint8Array(0));
  });

  test("copy semantics: neither the caller's buffer nor a returned one aliases stored data", async (t) => {
    const s = await makeStorage(t);
    const value = bytes(1, 2, 3);
    await s.put("k", value);
    value[0] = 99;
    const got = await s.get("k");
    assert.ok(got instanceof Uint8Array);
    got[1] = 99;
    assert.deepEqual(await s.get("k"), bytes(1, 2, 3));
  });

  test("list: prefix filter, plain string order", async (t) => {
    const s = await makeStorage(t);
    for (const k of ["b2", "a1", "b10", "c", "B0", "b"]) await s.put(k, bytes(0));
    assert.deepEqual(await s.list("b"), ["b", "b10", "b2"]);
    assert.deepEqual(await s.list(""), ["B0", "a1", "b", "b10", "b2", "c"]);
    assert.deepEqual(await s.list("zzz"), []);
  });

  test("delete: existing and missing keys", async (t) => {
    const s = await makeStorage(t);
    await s.put("k", bytes(1));
    await s.delete("k");
    await s.delete("k");
    await s.delete("never-existed");
    assert.equal(await s.get("k"), undefined);
    assert.deepEqual(await s.list(""), []);
  });

  test("put rejects values that are not Uint8Array", async (t) => {
    const s = await makeStorage(t);
    for (const v of ["abc", [1, 2], new ArrayBuffer(2), undefined, new DataView(new ArrayBuffer(1))]) {
      await assert.rejects(s.put("k", v), TypeError);
    }
    assert.deepEqual(await s.list(""), []);
  });
}

describe("MemoryStorage", () => {
  contractTests(() => new MemoryStorage());

  test("size counts keys", async () => {
    const s = new MemoryStorage();
    assert.equal(s.size, 0);
    await s.put("a", bytes(1));
    await s.put("b", bytes(1));
    await s.put("a", bytes(2));
    assert.equal(s.size, 2);
  });

  test("maxValueBytes: validated, exposed, enforced with RangeError", async () => {
    for (const bad of [0, -1, 1.5, "10", NaN, Infinity]) {
      assert.throws(() => new MemoryStorage({ maxValueBytes: bad }), { name: "TypeError", message: /maxValueBytes/ });
    }
    assert.equal(new MemoryStorage().maxValueBytes, undefined);
    const s = new MemoryStorage({ maxValueBytes: 4 });
    assert.equal(s.maxValueBytes, 4);
    await s.put("fits", new Uint8Array(4));
    await assert.rejects(s.put("big", new Uint8Array(5)), RangeError);
    assert.deepEqual(await s.list(""), ["fits"]);
  });
});

describe("FileStorage", () => {
  contractTests(async (t) => new FileStorage({ dir: join(await tempDir(t), "spool") }));

  test("constructor requires a non-empty dir string", () => {
    for (const options of [undefined, {}, { dir: "" }, { dir: 42 }]) {
      assert.throws(() => new FileStorage(options), { name: "TypeError", message: /dir/ });
    }
  });

  test("creates the directory 0o700 and files 0o600; tightens an existing directory", async (t) => {
    const root = await tempDir(t);
    const dir = join(root, "a", "b");
    const s = new FileStorage({ dir });
    await s.put("k", bytes(1));
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, "k"))).mode & 0o777, 0o600);

    const open = join(root, "open");
    await mkdir(open);
    await chmod(open, 0o755);
    await new FileStorage({ dir: open }).list("");
    assert.equal((await stat(open)).mode & 0o777, 0o700);
  });

  test("rejects keys that are not plain file names", async (t) => {
    const root = await tempDir(t);
    const s = new FileStorage({ dir: join(root, "spool") });
    const badKeys = ["", "../escape", "a/b", "a\\b", ".hidden", ".tmp-x", "..", "x".repeat(129), "sp ace", "é", 7];
    for (const key of badKeys) {
      for (const op of [() => s.get(key), () => s.put(key, bytes(1)), () => s.delete(key)]) {
        await assert.rejects(op(), (err) => err instanceof TypeError && err.message.includes(JSON.stringify(key)));
      }
    }
    await s.put("x".repeat(128), bytes(1));
    await s.put("_a.b-C9", bytes(1));
    assert.deepEqual(await readdir(root), ["spool"]);
  });

  test("temp and dot files are ignored by list; stale temp files are removed on first list", async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, ".tmp-k1-0123abcd"), "partial");
    await writeFile(join(dir, ".keep"), "not ours");
    await writeFile(join(dir, "k1"), "whole");
    const s = new FileStorage({ dir });
    assert.deepEqual(await s.list(""), ["k1"]);
    assert.deepEqual((await readdir(dir)).sort(), [".keep", "k1"]);
  });

  test("a new instance on the same dir sees earlier puts", async (t) => {
    const dir = join(await tempDir(t), "spool");
    const first = new FileStorage({ dir });
    await Promise.all([first.put("r-001", bytes(1)), first.put("r-002", bytes(2, 2)), first.put("other", bytes(3))]);
    const second = new FileStorage({ dir });
    assert.deepEqual(await second.list("r-"), ["r-001", "r-002"]);
    assert.deepEqual(await second.get("r-002"), bytes(2, 2));
    assert.deepEqual((await readdir(dir)).sort(), ["other", "r-001", "r-002"]);
  });

  test("filesystem errors propagate as rejections", async (t) => {
    const file = join(await tempDir(t), "not-a-dir");
    await writeFile(file, "x");
    const s = new FileStorage({ dir: file });
    await assert.rejects(s.put("k", bytes(1)), (err) => typeof err.code === "string" && !(err instanceof TypeError));
    await assert.rejects(s.list(""), (err) => typeof err.code === "string");
  });
});

describe("TimerScheduler", () => {
  test("fires wake at the scheduled time; pending reflects it", async () => {
    const sched = new TimerScheduler();
    let fired = 0;
    const at = Date.now() + 20;
    sched.schedule(at, () => { fired++; });
    assert.equal(sched.pending, at);
    await waitUntil(() => fired === 1, { what: "wake" });
    assert.equal(sched.pending, undefined);
  });

  test("a time in the past fires promptly", async () => {
    const sched = new TimerScheduler();
    let fired = false;
    sched.schedule(Date.now() - 1000, () => { fired = true; });
    await waitUntil(() => fired, { what: "wake" });
  });

  test("cancel prevents firing; schedule replaces the pending wake", async () => {
    const cancelled = new TimerScheduler();
    const replaced = new TimerScheduler();
    const marker = new TimerScheduler();
    const fired = [];
    cancelled.schedule(Date.now() + 5, () => fired.push("cancelled"));
    cancelled.cancel();
    assert.equal(cancelled.pending, undefined);
    replaced.schedule(Date.now() + 5, () => fired.push("replaced-first"));
    replaced.schedule(Date.now() + 10, () => fired.push("replaced-second"));
    marker.schedule(Date.now() + 50, () => fired.push("marker"));
    await waitUntil(() => fired.includes("marker"), { what: "later marker" });
    assert.deepEqual(fired, ["replaced-second", "marker"]);
  });

  test("rejections and throws from wake go to onError", async () => {
    const errors = [];
    const sched = new TimerScheduler({ onError: (err) => errors.push(err) });
    const boom = new Error("async boom");
    sched.schedule(Date.now(), async () => { throw boom; });
    await waitUntil(() => errors.length === 1, { what: "async error" });
    const sync = new Error("sync boom");
    sched.schedule(Date.now(), () => { throw sync; });
    await waitUntil(() => errors.length === 2, { what: "sync error" });
    assert.deepEqual(errors, [boom, sync]);
  });

  test("validates arguments", () => {
    assert.throws(() => new TimerScheduler({ onError: 1 }), TypeError);
    const sched = new TimerScheduler();
    assert.throws(() => sched.schedule(NaN, () => {}), TypeError);
    assert.throws(() => sched.schedule(Infinity, () => {}), TypeError);
    assert.throws(() => sched.schedule(Date.now(), "nope"), TypeError);
    assert.equal(sched.pending, undefined);
  });

  test("far-future wakes clamp setTimeout's delay and re-arm until due; cancel stops the chain", () => {
    const MAX = 2 ** 31 - 1;
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1000 });
    const spy = mock.method(globalThis, "setTimeout"); // wraps the mocked setTimeout
    try {
      const sched = new TimerScheduler();
      let fired = 0;
      const at = 1000 + 2 ** 32;
      sched.schedule(at, () => { fired++; });
      mock.timers.tick(MAX);
      mock.timers.tick(MAX);
      assert.equal(fired, 0);
      assert.equal(sched.pending, at);
      mock.timers.tick(1);
      assert.equal(fired, 0);
      mock.timers.tick(1);
      assert.equal(fired, 1);
      assert.deepEqual(spy.mock.calls.map((c) => c.arguments[1]), [MAX, MAX, 2]);

      sched.schedule(Date.now() + 2 ** 40, () => { fired++; });
      mock.timers.tick(MAX);
      assert.equal(sched.pending, Date.now() - MAX + 2 ** 40);
      sched.cancel();
      mock.timers.tick(2 ** 41);
      assert.equal(fired, 1);
      assert.equal(sched.pending, undefined);
      assert.ok(spy.mock.calls.every((c) => c.arguments[1] <= MAX));
    } finally {
      spy.mock.restore();
      mock.timers.reset();
    }
  });

  test("a pending wake does not keep the process alive", async () => {
    const url = new URL("../../js/timer-scheduler.js", import.meta.url).href;
    const code = `import { TimerScheduler } from ${JSON.stringify(url)};
      new TimerScheduler().schedule(Date.now() + 3_600_000, () => process.exit(3));`;
    const { code: exitCode } = await new Promise((resolve) => {
      const child = execFile(process.execPath, ["--input-type=module", "-e", code], { timeout: 10_000 }, (err) => resolve(err ?? { code: 0 }));
      child.stdin?.end();
    });
    assert.equal(exitCode, 0);
  });
});
