/** Instantiates the wasm engine in Workers, from the module wrangler compiles at deploy time. */
import module from "../pkg/export_retry_bg.wasm";
import { initSync } from "../pkg/export_retry.js";

initSync({ module });
