export * from "./index.js";
import type { Scheduler, StorageAdapter } from "./index.js";

/** One file per record in `dir` (mode 0700), written atomically (files 0600). */
export class FileStorage implements StorageAdapter {
  constructor(options: { dir: string });
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

/** Wake-ups on unref'd timers: a scheduled drain never keeps the process alive. */
export class TimerScheduler implements Scheduler {
  constructor(options?: { onError?: (error: unknown) => void });
  readonly pending: number | undefined;
  schedule(atMs: number, wake: () => unknown): void;
  cancel(): void;
}
