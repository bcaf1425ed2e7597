import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Writes a module for `--import` that registers the estimator "centered" (r − mean); returns its path. */
export function writeCenteredEstimatorModule(dir: string): string {
  const module = join(dir, "centered.mjs");
  writeFileSync(
    module,
    "export default ({ registerAdvantageEstimator }) => registerAdvantageEstimator('centered', (rewards) => {\n" +
      "  const mean = rewards.reduce((s, r) => s + r, 0) / rewards.length;\n" +
      "  return rewards.map((r) => r - mean);\n});\n",
  );
  return module;
}
