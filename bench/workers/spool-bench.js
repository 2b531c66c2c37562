/**
 * Spool write in a Durable Object: the SpoolObject's own `spool()` (the RPC a request
 * isolate makes for a failed export: the engine's record, checksum and SQLite row)
 * against a raw SQLite insert of the same bytes in the same object, and an empty RPC
 * (what both pay for the call itself). GET /bench?arm=spool|raw|empty&n=25&size=65536
 * makes n sequential RPCs of that arm from the Worker, each its own write and commit.
 */
import { SpoolObject } from "../../js/workers.js";

export class BenchSpool extends SpoolObject {
  #rawReady = false;
  #rawKey = 0;

  async benchSpool(body) {
    const { outcome } = await this.spool(body, { contentType: "application/x-protobuf" });
    return outcome;
  }

  benchRaw(body) {
    const sql = this.ctx.storage.sql;
    if (!this.#rawReady) {
      sql.exec("CREATE TABLE IF NOT EXISTS raw_bench (key TEXT PRIMARY KEY, value BLOB NOT NULL)");
      this.#rawReady = true;
    }
    const key = `raw-${String(this.#rawKey++).padStart(12, "0")}-${body.byteLength}-0`;
    sql.exec("INSERT OR REPLACE INTO raw_bench (key, value) VALUES (?, ?)", key, body.buffer);
    return "written";
  }

  benchEmpty() {
    return "nothing";
  }
}

const METHODS = { spool: "benchSpool", raw: "benchRaw", empty: "benchEmpty" };

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const method = METHODS[url.searchParams.get("arm")];
    if (url.pathname !== "/bench" || !method) return new Response("not found\n", { status: 404 });
    const n = Number(url.searchParams.get("n") ?? 25);
    const size = Number(url.searchParams.get("size") ?? 65536);
    const stub = env.BENCH_SPOOL.get(env.BENCH_SPOOL.idFromName("bench"));
    const body = new Uint8Array(size).fill(7);
    const outcomes = {};
    for (let i = 0; i < n; i++) {
      const outcome = await stub[method](body);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    return Response.json({ outcomes });
  },
};
