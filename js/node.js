/** `export-retry/node`: the Node adapters, and everything `export-retry` has. */
export { createExporter, MemoryStorage } from "./index.node.js";
export { FileStorage } from "./file-storage.js";
export { TimerScheduler } from "./timer-scheduler.js";
