/**
 * File-system storage adapter for Node: one file per key in a private directory.
 * put() is atomic (temp file + rename) and durable (fsync of file and directory).
 */
import { mkdir, chmod, open, readFile, rename, unlink, readdir } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const TMP_PREFIX = ".tmp-";
// Errors some platforms give when a directory cannot be opened or fsynced; safe to skip.
const DIR_FSYNC_UNSUPPORTED = new Set(["EISDIR", "EINVAL", "EPERM", "EBADF", "ENOTSUP"]);

export class FileStorage {
  #dir;
  /** @type {Promise<void> | undefined} */
  #ready;
  #cleaned = false;
  /** Temp files of puts in flight, so the stale-temp sweep never removes them. */
  #inFlight = new Set();

  /** @param {{ dir: string }} options directory holding the files (created with mode 0o700) */
  constructor({ dir } = {}) {
    if (typeof dir !== "string" || dir === "") throw new TypeError("dir must be a non-empty string");
    this.#dir = dir;
  }

  /** @param {string} key @returns {Promise<Uint8Array | undefined>} */
  async get(key) {
    const path = this.#path(key);
    await this.#init();
    try {
      const buf = await readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      if (err?.code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Atomically replaces the value of `key`; durable once resolved. @param {string} key @param {Uint8Array} value */
  async put(key, value) {
    const path = this.#path(key);
    if (!(value instanceof Uint8Array)) throw new TypeError(`value for key ${key} must be a Uint8Array`);
    await this.#init();
    const tmp = join(this.#dir, `${TMP_PREFIX}${key}-${randomBytes(8).toString("hex")}`);
    this.#inFlight.add(tmp);
    try {
      const fh = await open(tmp, "wx", 0o600);
      try {
        await fh.writeFile(value);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    } finally {
      this.#inFlight.delete(tmp);
    }
    await this.#syncDir();
  }

  /** @param {string} key missing keys are fine */
  async delete(key) {
    const path = this.#path(key);
    await this.#init();
    try {
      await unlink(path);
    } catch (err) {
      if (err?.code !== "ENOENT") throw err;
    }
  }

  /** Sorted keys starting with `prefix`. The first call also removes stale temp files. @param {string} prefix */
  async list(prefix) {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    await this.#init();
    const names = await readdir(this.#dir);
    if (!this.#cleaned) {
      this.#cleaned = true;
      const stale = names.filter((n) => n.startsWith(TMP_PREFIX) && !this.#inFlight.has(join(this.#dir, n)));
      await Promise.all(stale.map((n) => unlink(join(this.#dir, n)).catch((err) => {
        if (err?.code !== "ENOENT") throw err;
      })));
    }
    return names.filter((n) => !n.startsWith(".") && n.startsWith(prefix)).sort();
  }

  #path(key) {
    if (typeof key !== "string" || !KEY_RE.test(key)) {
      throw new TypeError(`invalid storage key ${JSON.stringify(key)}: must match ${KEY_RE}`);
    }
    return join(this.#dir, key);
  }

  /** Creates/chmods the directory once; a failed attempt is retried on the next call. */
  #init() {
    this.#ready ??= (async () => {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await chmod(this.#dir, 0o700);
    })().catch((err) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #syncDir() {
    let fh;
    try {
      fh = await open(this.#dir, "r");
      await fh.sync();
    } catch (err) {
      if (!DIR_FSYNC_UNSUPPORTED.has(err?.code)) throw err;
    } finally {
      await fh?.close();
    }
  }
}
