/**
 * In-memory storage adapter (tests, demos, short-lived processes).
 * Implements the storage adapter contract: get/put/delete/list, optional maxValueBytes.
 * Values are copied on the way in and out, so callers never share buffers with the store.
 */
export class MemoryStorage {
  /** @type {Map<string, Uint8Array>} */
  #map = new Map();

  /** @param {{ maxValueBytes?: number }} [options] largest value put() accepts; absent = unlimited */
  constructor({ maxValueBytes } = {}) {
    if (maxValueBytes !== undefined) {
      if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes <= 0) {
        throw new TypeError(`maxValueBytes must be a positive integer, got ${maxValueBytes}`);
      }
      /** @type {number | undefined} */
      this.maxValueBytes = maxValueBytes;
    }
  }

  /** Number of stored keys. */
  get size() {
    return this.#map.size;
  }

  /** @param {string} key @returns {Promise<Uint8Array | undefined>} a copy of the value */
  async get(key) {
    checkKey(key);
    return this.#map.get(key)?.slice();
  }

  /** @param {string} key @param {Uint8Array} value stored as a copy */
  async put(key, value) {
    checkKey(key);
    if (!(value instanceof Uint8Array)) throw new TypeError(`value for key ${key} must be a Uint8Array`);
    if (this.maxValueBytes !== undefined && value.byteLength > this.maxValueBytes) {
      throw new RangeError(`value for key ${key} is ${value.byteLength} bytes, above maxValueBytes ${this.maxValueBytes}`);
    }
    this.#map.set(key, value.slice());
  }

  /** @param {string} key missing keys are fine */
  async delete(key) {
    checkKey(key);
    this.#map.delete(key);
  }

  /** @param {string} prefix @returns {Promise<string[]>} matching keys, sorted ascending */
  async list(prefix) {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    return [...this.#map.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

function checkKey(key) {
  if (typeof key !== "string") throw new TypeError(`key must be a string, got ${typeof key}`);
}
