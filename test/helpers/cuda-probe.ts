import type { DeviceProbe } from "../../src/cuda/addon.js";

/** What the addon's probe reports on a machine whose driver is older than the CUDA runtime linked into it. */
export function insufficientDriverProbe(versions: { runtimeVersion: number; driverVersion: number }): DeviceProbe {
  return {
    ok: false,
    errorName: "cudaErrorInsufficientDriver",
    errorString: "CUDA driver version is insufficient for CUDA runtime version",
    failedCall: "cudaGetDeviceCount",
    deviceCount: 0,
    name: "",
    major: 0,
    minor: 0,
    totalMemory: 0,
    freeMemory: 0,
    ...versions,
  };
}
