/**
 * The addon's check of its own kernels where they run (native/src/self_check.cc), for a GPU machine before a
 * trainer relies on it: token log-probs, their backward and the fused pass against float64 on small cases that
 * reach every path (vocabularies of 1 to 4099, misaligned rows, chunking, temperature, masked rows, NaN, ±Infinity,
 * bfloat16), and on the GPU the loss kernels against the host executor, which the conformance suite checks against
 * the TypeScript reference. `grpo_roc_bench --check device` (bench/gpu/run-on-gpu.sh) runs the same cases without
 * Node.
 */
import { createCudaBackend, CudaDeviceError, CudaUnavailableError, type CudaBackendOptions } from "./backend.js";
import { loadAddon } from "./addon.js";
import { invalid } from "../backends/contract.js";

/** One case of cudaSelfCheck: a kernel on one input, compared with its float64 result. */
export interface SelfCheckCase {
  /** What was checked, e.g. the kernel and the input's shape. */
  readonly name: string;
  /** Whether every entry was within tolerance. */
  readonly ok: boolean;
  /** Entries compared. */
  readonly compared: number;
  /** The largest |got − want| / (atol + rtol·|want|) of the case: at most 1 passes. */
  readonly worst: number;
  /** The first entry that failed, in words ("" when ok). */
  readonly detail: string;
}

/** cudaSelfCheck's result: every case, and whether all passed. */
export interface SelfCheckReport {
  /** Where the kernels ran: the GPU ("device") or the host executor. */
  readonly exec: "device" | "host";
  /** true when every case passed. */
  readonly ok: boolean;
  /** Each case's result, failed ones included. */
  readonly cases: readonly SelfCheckCase[];
}

/**
 * Runs the self-check on the GPU ("device", the default) or on the kernels' host executor. Rejects with
 * CudaUnavailableError (the probe's reason) when that cannot run here, and CudaDeviceError on a CUDA error; a
 * failed comparison is not an error: it is a case with `ok: false` and `report.ok` false.
 */
export async function cudaSelfCheck(
  options: Pick<CudaBackendOptions, "exec" | "addonPath"> = {},
): Promise<SelfCheckReport> {
  const exec = options.exec ?? "device";
  if (exec !== "device" && exec !== "host")
    throw invalid("options.exec", `expected "device" or "host", got ${JSON.stringify(exec)}`);
  const backend = createCudaBackend(options);
  const info = await backend.probe();
  const state = loadAddon(options.addonPath);
  if (!info.available || !state.loaded) throw new CudaUnavailableError(backend.name, info.reason);
  try {
    return (await state.addon.selfCheck({ exec })) as SelfCheckReport;
  } catch (error) {
    const e = error as Error & { code?: string };
    throw new CudaDeviceError(`${backend.name} self-check: ${e.message}`, e.code);
  }
}
