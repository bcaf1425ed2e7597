/**
 * Memory per finished group does not grow with the length of its id. To catch a group id that comes back, the CLI
 * remembers every finished group; it used to keep each id whole (200 ids of 500 KB: 261 MB). It keeps a 128-bit
 * digest instead. Checked by running the built bin on 200 groups with 500 KB ids twice, remembering the finished
 * groups (the default) and not (--repeated-groups separate), and comparing the peak resident set size
 * (test/fixtures/cli/peak-rss.mjs). Whole ids added 175 MB (310 MB against 135 MB); digests add nothing measurable
 * (150 MB and 149 MB), so the bound, 40 MB of slack for the garbage collector's moods, cannot mistake the two.
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(root, "dist", "cli.js");
const PEAK_RSS = pathToFileURL(join(root, "test", "fixtures", "cli", "peak-rss.mjs")).href;
const MB = 1e6;
const GROUPS = 200;
const ID_BYTES = 500_000;

let dir = "";
let input = "";

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  dir = mkdtempSync(join(tmpdir(), "grpo-roc-memory-ids-"));
  input = join(dir, "long-ids.jsonl");
  const fd = openSync(input, "w");
  const filler = "x".repeat(ID_BYTES - 8);
  for (let g = 0; g < GROUPS; g++) {
    const id = `${String(g).padStart(8, "0")}${filler}`;
    writeSync(fd, `{"groupId":"${id}","id":1,"reward":1}\n{"groupId":"${id}","id":2,"reward":0}\n`);
  }
  closeSync(fd);
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function peakRss(args: readonly string[]): number {
  const rss = join(dir, `rss-${Math.random().toString(36).slice(2)}`);
  const run = spawnSync(
    process.execPath,
    ["--import", PEAK_RSS, CLI, "advantages", "-q", "--kept-only", "-o", join(dir, "out.jsonl"), ...args, input],
    { env: { ...process.env, GRPO_ROC_PEAK_RSS_FILE: rss }, encoding: "utf8" },
  );
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return Number(readFileSync(rss, "utf8"));
}

describe("memory per finished group", () => {
  it(`${GROUPS} groups with ${ID_BYTES / 1000} KB ids cost no more than remembering nothing (+40 MB slack)`, () => {
    const remembering = peakRss([]);
    const forgetting = peakRss(["--repeated-groups", "separate"]);
    console.log(
      `peak RSS on ${GROUPS} ids of ${ID_BYTES / 1000} KB: ${(remembering / MB).toFixed(0)} MB remembering the ` +
        `finished groups, ${(forgetting / MB).toFixed(0)} MB not`,
    );
    expect(remembering).toBeLessThan(forgetting + 40 * MB);
  });
});
