import { GrpoRocError, invalid } from "../errors.js";
import { referenceBackend } from "./reference.js";
import type { Backend, BackendInfo } from "./contract.js";

// Keyed by a literal, not `referenceBackend.name`: a property read at load time would keep the reference backend, and all
// it refers to, in every browser bundle that never asks for a backend.
const backends = new Map<string, Backend>([["reference", referenceBackend]]);
let defaultName = "reference";

/** Adds a backend (replacing none: names are unique). */
export function registerBackend(backend: Backend): void {
  const kernels = ["probe", "policyLoss", "tokenLogProbs", "tokenLogProbsBackward", "policyLossFromLogits"] as const;
  if (typeof backend !== "object" || backend === null || typeof backend.name !== "string" || backend.name === "") {
    throw invalid("backend", "expected a Backend: { name, probe(), policyLoss(), … }");
  }
  const missing = kernels.find((kernel) => typeof backend[kernel] !== "function");
  if (missing !== undefined) throw invalid(`backend.${missing}`, "expected a function: every backend has every kernel");
  if (backends.has(backend.name)) throw new GrpoRocError(`backend "${backend.name}" is already registered`);
  backends.set(backend.name, backend);
}

/**
 * A registered backend by name; without one, the default (the reference, unless `setDefaultBackend` changed it).
 *
 * @throws ValidationError at `backend` for a name nobody registered, listing those registered.
 */
export function getBackend(name: string = defaultName): Backend {
  const backend = backends.get(name);
  if (backend === undefined)
    throw invalid("backend", `unknown backend "${name}"; registered: ${[...backends.keys()].join(", ")}`);
  return backend;
}

/** Makes `name` the backend that `getBackend()` returns; it must be available here. */
export async function setDefaultBackend(name: string): Promise<void> {
  const info = await getBackend(name).probe();
  if (!info.available) throw new GrpoRocError(`backend "${name}" is not available here: ${info.reason}`);
  defaultName = name;
}

/** Every registered backend with its availability on this machine. */
export async function listBackends(): Promise<BackendInfo[]> {
  return Promise.all([...backends.values()].map((backend) => backend.probe()));
}
