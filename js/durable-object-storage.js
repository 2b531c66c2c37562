/**
 * Storage adapter over a SQLite-backed Durable Object's SQL API: one row per
 * record piece in a table of its own. Listing reads keys only (the key-value API's
 * list() would read every value), and values stay under 1 MiB, well inside the
 * 2 MB row limit; larger records are chunked by the engine.
 */
const TABLE = "export_retry_spool";

export class DurableObjectSqlStorage {
  #sql;

  /** @param {DurableObjectStorage} storage `ctx.storage` of a SQLite-backed Durable Object */
  constructor(storage, { maxValueBytes = 1024 * 1024 } = {}) {
    if (!storage?.sql || typeof storage.sql.exec !== "function") {
      throw new TypeError(
        "DurableObjectSqlStorage needs ctx.storage of a SQLite-backed Durable Object (new_sqlite_classes in the wrangler migration)",
      );
    }
    this.#sql = storage.sql;
    this.maxValueBytes = maxValueBytes;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (key TEXT PRIMARY KEY, value BLOB NOT NULL)`);
  }

  get(key) {
    const row = this.#sql.exec(`SELECT value FROM ${TABLE} WHERE key = ?`, key).toArray()[0];
    return row ? new Uint8Array(row.value) : undefined;
  }

  put(key, value) {
    if (!(value instanceof Uint8Array)) throw new TypeError("put(key, value): value must be a Uint8Array");
    const whole = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
    this.#sql.exec(`INSERT OR REPLACE INTO ${TABLE} (key, value) VALUES (?, ?)`, key, whole ? value.buffer : value.slice().buffer);
  }

  delete(key) {
    this.#sql.exec(`DELETE FROM ${TABLE} WHERE key = ?`, key);
  }

  list(prefix) {
    const rows = this.#sql.exec(`SELECT key FROM ${TABLE} WHERE substr(key, 1, ?) = ? ORDER BY key`, prefix.length, prefix);
    return rows.toArray().map((row) => row.key);
  }
}
