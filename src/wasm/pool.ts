/**
 * The wasm backend's threads: workers that each instantiate the kernel over the one shared WebAssembly.Memory, so
 * that a call's positions are split among them and the calling thread, every thread reading and writing the same
 * memory. worker_threads in Node, Web Workers in browsers (where a shared memory needs cross-origin isolation).
 *
 * The pool starts on the first call that can use it, and stays: a worker takes tens of milliseconds to start.
 * Between calls its workers are unreferenced, so a Node process whose work is done exits without release(); release()
 * ends them (a later call starts new ones).
 */
import type { WasmKernel } from "./kernel.js";

/** One kernel call over a range of positions: an export's name and its arguments (byte offsets and counts). */
export interface KernelCall {
  readonly fn: "forward_stats" | "backward" | "forward_backward";
  readonly args: readonly number[];
}

/** What a worker thread is, to the pool, in Node and in browsers alike. */
interface Thread {
  post(message: unknown): void;
  /** Keeps (true) or stops keeping (false) a Node process alive; nothing in browsers. */
  hold(keep: boolean): void;
  /** Resolves once the worker has stopped. */
  terminate(): Promise<unknown>;
}

/** Runs in each worker: instantiates the kernel over the shared memory, then runs the calls it is sent. */
const RECEIVE = `let kernel;
function receive(message) {
  if (message.module !== undefined) {
    kernel = new WebAssembly.Instance(message.module, { env: { memory: message.memory } }).exports;
    return;
  }
  try {
    kernel[message.fn](...message.args);
    port.postMessage({ id: message.id });
  } catch (error) {
    port.postMessage({ id: message.id, error: String((error && error.stack) || error) });
  }
}`;

/** Node: an ES module from a data: URL, whatever module type the parent's flags select for eval'd code. */
const NODE_WORKER = `import { parentPort as port } from "node:worker_threads";
${RECEIVE}
port.on("message", receive);`;

/** Browsers: a classic worker script. */
const BROWSER_WORKER = `"use strict";
const port = self;
${RECEIVE}
self.onmessage = (event) => receive(event.data);`;

/** A worker's answer to one call. */
interface Reply {
  readonly id: number;
  readonly error?: string;
}

/** The threads a call may use: the calling thread's kernel and, where memory is shared, the workers'. */
export class ThreadPool {
  private threads: Thread[] | undefined;
  private starting: Promise<Thread[]> | undefined;
  /** Resolves once the workers last ended (release, or a death) have stopped running: they share the memory. */
  private stopping: Promise<unknown> = Promise.resolve();
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  constructor(
    private readonly kernel: WasmKernel,
    /** Threads in all, the calling one included. */
    readonly size: number,
  ) {}

  /**
   * Runs the calls, at most `size` of them, at once: the first on the calling thread, the others on workers; resolves
   * when all are done, or rejects with the first worker's error. `meanwhile` runs on the calling thread after the
   * workers have their calls and before its own (staging the next chunk). Resolves to how long `meanwhile` and the
   * calling thread's own call took, in milliseconds.
   */
  async run(calls: readonly KernelCall[], meanwhile?: () => void): Promise<{ meanwhile: number; own: number }> {
    if (calls.length > this.size) throw new Error(`${calls.length} calls for a pool of ${this.size} threads`);
    await this.stopping;
    const workers = calls.length > 1 ? await this.workers() : [];
    // release(), or a worker's death, while the workers were being fetched: they are ending.
    if (calls.length > 1 && this.threads !== workers) throw new Error("the wasm backend was released during a call");
    const done = calls.slice(1).map((call, k) => this.send(workers[k]!, call));
    for (const worker of workers) worker.hold(true);
    let took: { meanwhile: number; own: number } | undefined;
    let ownError: unknown;
    try {
      const start = performance.now();
      meanwhile?.();
      const own = performance.now();
      const first = calls[0];
      if (first !== undefined) (this.kernel.exports[first.fn] as (...args: number[]) => void)(...first.args);
      took = { meanwhile: own - start, own: performance.now() - own };
    } catch (error) {
      ownError = error;
    }
    // Every worker is done with the memory before the call ends, whatever failed: the next call reuses it.
    const settled = await Promise.allSettled(done);
    for (const worker of workers) worker.hold(false);
    if (took === undefined) throw ownError;
    const failed = settled.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    return took;
  }

  /** Resolves once the workers last ended have stopped: a call waits for it before it writes the memory. */
  stopped(): Promise<unknown> {
    return this.stopping;
  }

  /** Ends the workers; a later call starts new ones. */
  async release(): Promise<void> {
    const threads = this.threads ?? (await this.starting?.catch(() => undefined));
    this.end(threads, new Error("the wasm backend was released during a call"));
    await this.stopping;
  }

  /** Ends these workers, failing the calls that wait on them; `stopping` resolves when they have stopped. */
  private end(threads: Thread[] | undefined, error: Error): void {
    this.threads = undefined;
    this.starting = undefined;
    const stopped = (threads ?? []).map((thread) => thread.terminate().catch(() => undefined));
    this.stopping = Promise.all([this.stopping, ...stopped]);
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }

  private send(thread: Thread, call: KernelCall): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      thread.post({ id, fn: call.fn, args: call.args });
    });
  }

  private receive(reply: Reply): void {
    const waiting = this.pending.get(reply.id);
    if (waiting === undefined) return;
    this.pending.delete(reply.id);
    if (reply.error === undefined) waiting.resolve();
    else waiting.reject(new Error(`a wasm worker failed: ${reply.error}`));
  }

  /** A worker that died (it cannot be trusted with the memory again): every call waiting fails, and all end. */
  private fail(error: Error): void {
    this.end(this.threads, new Error(`a wasm worker thread failed: ${error.message}`));
  }

  private workers(): Promise<Thread[]> {
    if (this.threads !== undefined) return Promise.resolve(this.threads);
    const listener = { reply: (reply: Reply) => this.receive(reply), fail: (error: Error) => this.fail(error) };
    this.starting ??= startThreads(this.size - 1, listener, this.kernel).then(
      (threads) => {
        this.threads = threads;
        return threads;
      },
      (error: unknown) => {
        // Not cached: the next call tries again.
        this.starting = undefined;
        throw new Error(`the wasm backend could not start its worker threads: ${String(error)}`);
      },
    );
    return this.starting;
  }
}

/** `count` workers, each with the kernel instantiated over the kernel's shared memory. */
async function startThreads(count: number, listener: Listener, kernel: WasmKernel): Promise<Thread[]> {
  const start = inNode() ? await nodeThreadFactory() : browserThreadFactory();
  const threads: Thread[] = [];
  try {
    for (let k = 0; k < count; k++) threads.push(start(listener));
    for (const thread of threads) thread.post({ module: kernel.module, memory: kernel.memory });
  } catch (error) {
    // The ones that started are ended: none is left holding the listener.
    await Promise.allSettled(threads.map((thread) => thread.terminate()));
    throw error;
  }
  return threads;
}

/** Where a worker's replies, and its death, go. */
interface Listener {
  reply(reply: Reply): void;
  fail(error: Error): void;
}

type ThreadFactory = (listener: Listener) => Thread;

function inNode(): boolean {
  const process = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof process?.versions?.node === "string";
}

async function nodeThreadFactory(): Promise<ThreadFactory> {
  const { Worker } = await import("node:worker_threads");
  return (listener) => {
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(NODE_WORKER)}`));
    worker.on("message", (reply: Reply) => listener.reply(reply));
    // An ended worker's events are its own: they fail none of the workers that replaced it.
    let ending = false;
    worker.on("error", (error) => ending || listener.fail(error));
    worker.on("messageerror", (error) => ending || listener.fail(error));
    // terminate() ends a worker with code 1 after its "exit" listeners are told; any other exit is a death.
    worker.on("exit", (code) => ending || listener.fail(new Error(`a worker thread exited (code ${code})`)));
    worker.unref();
    return {
      post: (message) => worker.postMessage(message),
      hold: (keep) => {
        if (ending) return;
        if (keep) worker.ref();
        else worker.unref();
      },
      terminate: () => {
        ending = true;
        // Referenced until it has stopped: whoever awaits its end keeps Node alive until then.
        worker.ref();
        return worker.terminate();
      },
    };
  };
}

interface BrowserWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  onmessage: ((event: { data: Reply }) => void) | null;
  onerror: ((event: { message?: string }) => void) | null;
  onmessageerror: (() => void) | null;
}

let browserWorkerUrl: string | undefined;

function browserThreadFactory(): ThreadFactory {
  const scope = globalThis as unknown as {
    Worker: new (url: string) => BrowserWorker;
    Blob: new (parts: string[], options: { type: string }) => object;
    URL: { createObjectURL(blob: object): string };
  };
  // One Blob URL for the page, kept: every pool and restart reuses it, so there is one, whatever their number.
  browserWorkerUrl ??= scope.URL.createObjectURL(new scope.Blob([BROWSER_WORKER], { type: "text/javascript" }));
  const url = browserWorkerUrl;
  return (listener) => {
    const worker = new scope.Worker(url);
    worker.onmessage = (event) => listener.reply(event.data);
    worker.onerror = (event) => listener.fail(new Error(event.message ?? "a Web Worker failed"));
    worker.onmessageerror = () => listener.fail(new Error("a Web Worker could not read a message"));
    const terminate = async () => worker.terminate();
    return { post: (message) => worker.postMessage(message), hold: () => {}, terminate };
  };
}

/**
 * How many threads this engine can give the backend, and why no more: workers need a shared memory (the kernel's
 * shared build) and a Worker API; `requested` (the option) or else the cores available.
 */
export function threadsAvailable(
  kernel: WasmKernel,
  requested: number | undefined,
): { readonly threads: number; readonly why: string } {
  if (!kernel.shared) {
    return {
      threads: 1,
      why: "shared WebAssembly memory is not allowed here (a browser page needs cross-origin isolation: COOP and COEP headers)",
    };
  }
  if (!inNode() && typeof (globalThis as { Worker?: unknown }).Worker !== "function")
    return { threads: 1, why: "this engine has no Worker API" };
  if (requested !== undefined)
    return { threads: requested, why: requested === 1 ? "options.threads is 1" : "options.threads" };
  const cores = coresAvailable();
  return { threads: cores, why: cores === 1 ? "one core is available" : "the cores available" };
}

function coresAvailable(): number {
  const scope = globalThis as {
    navigator?: { hardwareConcurrency?: number };
  };
  const fromNavigator = scope.navigator?.hardwareConcurrency;
  if (typeof fromNavigator === "number" && fromNavigator >= 1) return fromNavigator;
  return nodeCores ?? 1;
}

/** Node's os.availableParallelism(), read once at load where Node is (the browser build never imports node:os). */
let nodeCores: number | undefined;
export async function readNodeCores(): Promise<void> {
  if (!inNode() || nodeCores !== undefined) return;
  const os = await import("node:os");
  nodeCores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}
