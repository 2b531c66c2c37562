/** Instantiates the wasm engine in Node, from the file beside the bindings. */
import { readFileSync } from "node:fs";
import { initSync } from "../pkg/export_retry.js";

initSync({ module: readFileSync(new URL("../pkg/export_retry_bg.wasm", import.meta.url)) });
