import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The built bin, which the Python examples and the client drive. */
export const CLI = join(root, "dist", "cli.js");

/**
 * A Python 3.9+ to run the Python examples and client with: /usr/bin/python3 (CI has it), else the first python3 on
 * PATH; undefined when there is none (the tests are then skipped).
 */
export function findPython(): string | undefined {
  for (const candidate of ["/usr/bin/python3", "python3"]) {
    const probe = spawnSync(candidate, ["-c", "import sys; print(sys.version_info >= (3, 9))"], { encoding: "utf8" });
    if (probe.status === 0 && probe.stdout.trim() === "True") return candidate;
  }
  return undefined;
}

/** A command for GRPO_ROC_CLI, quoted for shlex.split: this node and the built bin, wherever the checkout lives. */
const quote = (text: string) => `'${text.replace(/'/g, `'"'"'`)}'`;
export const GRPO_ROC_CLI = `${quote(process.execPath)} ${quote(CLI)}`;
