/**
 * `--import MODULE`: a module of the user's, loaded before the options are read. Its default export is called with
 * grpo-roc's API (the `grpoRoc` namespace of the very copy the command runs), so what it registers, such as an
 * advantage estimator, can be chosen by name on the same command line.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { grpoRoc } from "../index.js";
import { UsageError } from "./args.js";

export async function loadExtension(specifier: string): Promise<void> {
  const isPath = specifier.startsWith(".") || isAbsolute(specifier);
  const url = isPath ? pathToFileURL(resolve(specifier)).href : specifier;
  let loaded: { default?: unknown };
  try {
    loaded = (await import(url)) as { default?: unknown };
  } catch (error) {
    throw new UsageError(`--import: cannot load ${specifier}: ${(error as Error).message}`);
  }
  if (typeof loaded.default !== "function") {
    throw new UsageError(
      `--import: ${specifier} has no default export function; write ` +
        "`export default (grpoRoc) => grpoRoc.registerAdvantageEstimator(name, estimator)`",
    );
  }
  try {
    await loaded.default(grpoRoc);
  } catch (error) {
    throw new UsageError(`--import: ${specifier} failed: ${(error as Error).message}`);
  }
}
