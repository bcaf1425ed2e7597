import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    reporters: [
      "default",
      // The JSON report lets .ci/run print the plain "N passed, N failed" closing line.
      ["json", { outputFile: "out/vitest-report.json" }],
      // Closes the run with the skipped tests grouped by reason and the command that installs what they need.
      "./test/helpers/skip-summary.ts",
    ],
  },
});
