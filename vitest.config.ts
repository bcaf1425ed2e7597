import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // The JSON report lets .ci/run print the plain "N passed, N failed" closing line.
    reporters: ["default", ["json", { outputFile: "out/vitest-report.json" }]],
  },
});
