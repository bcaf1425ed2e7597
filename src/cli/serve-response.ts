/**
 * A `serve` response as it is built: UTF-8 bytes in buffers outside the JavaScript heap. A response is held whole
 * until it is complete, because a request that fails half-way gets one error line instead of its records; held as
 * strings, records took about seven times their bytes of heap (2.5 GB of RSS for a response of 350 MB, measured),
 * and a request well within the size limit could exhaust the heap. As bytes they take their size.
 */

/** The size of each buffer: large enough that a response of a few megabytes is a handful of them. */
const CHUNK_BYTES = 1 << 20;

export class ResponseBuffer {
  private readonly full: Buffer[] = [];
  private current = Buffer.alloc(0);
  private used = 0;

  /** Appends `text` (well-formed UTF-16, as JSON text is) as UTF-8. */
  append(text: string): void {
    // A UTF-16 code unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
    const room = text.length * 3;
    if (this.current.length - this.used < room) {
      if (this.used > 0) this.full.push(this.current.subarray(0, this.used));
      this.current = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room));
      this.used = 0;
    }
    this.used += this.current.write(text, this.used);
  }

  /** The bytes appended, in order, as pieces to write one after another. */
  pieces(): Buffer[] {
    return this.used === 0 ? [...this.full] : [...this.full, this.current.subarray(0, this.used)];
  }
}
