/**
 * A vitest reporter (registered in vitest.config.ts) that closes a run with what it skipped and why: the skipped
 * tests grouped by reason, then the one command that installs what they need (scripts/install-test-deps.sh, the
 * same steps .ci/run takes) and what that command cannot install. It only prints: the exit code is vitest's.
 *
 * The tests carry their reason in their own or an enclosing describe's title ("… — skipped: REASON",
 * "… (skipped: REASON)", "skipped: REASON") or in `context.skip(REASON)`; the checks that run only with CI set say
 * "(required when CI is set)" or start with "CI". The grouping is the pure function skipSummary, tested in
 * test/skip-summary.test.ts.
 */
import type { Reporter, TestCase, TestModule, TestSuite, Vitest } from "vitest/node";

export const INSTALL_COMMAND = "sudo bash scripts/install-test-deps.sh";

/** What a skipped test needs to run. */
export type Need = "vulkan" | "chromium" | "jupyter" | "python" | "cuda-addon" | "gpu" | "ci" | "other";

/** One skipped test: its file, its titles from the outermost describe to its own, the note of context.skip. */
export interface SkippedTest {
  readonly file: string;
  readonly titles: readonly string[];
  readonly note?: string | undefined;
  /** options.mode: "todo" for it.todo. */
  readonly mode?: string | undefined;
}

export interface SkipReason {
  readonly reason: string;
  readonly need: Need;
}

export interface SkipGroup extends SkipReason {
  readonly count: number;
  readonly files: readonly string[];
}

const CI_ONLY = "runs only with CI set";
const NO_REASON = "no reason in the title";

/** Installable by scripts/install-test-deps.sh, with the words for the summary. */
const INSTALLABLE: Partial<Record<Need, string>> = {
  vulkan: "a Vulkan driver (Mesa ≥ 23)",
  chromium: "Chromium",
  jupyter: "Jupyter's Python packages",
  python: "python3",
};

/** "… skipped: REASON" or "… (skipped: REASON)" in one title. */
function reasonInTitle(title: string): string | undefined {
  const match = /(\(?)\bskipped: (.+)$/s.exec(title);
  if (match === null) return undefined;
  let reason = match[2]!.trim();
  if (match[1] === "(" && reason.endsWith(")")) reason = reason.slice(0, -1).trim();
  return reason.length > 0 ? reason : undefined;
}

/** A probe's reason in a test's own title, "(no CUDA device: …)", where it runs only when the probe succeeds. */
function probeReasonInTitle(title: string): string | undefined {
  const match =
    /\(((?:no CUDA device|CUDA driver too old|not built|built but cannot load|no addon built)\b.*)\)$/s.exec(title);
  return match?.[1];
}

/** What a reason asks for (the order matters: "no CUDA device … no NVIDIA driver" is a GPU, not a driver to build). */
export function needOf(reason: string): Need {
  const r = reason.toLowerCase();
  if (r === CI_ONLY.toLowerCase()) return "ci";
  if (/no cuda device|cuda driver too old|needs a cuda device|nvidia gpu/.test(r)) return "gpu";
  if (/nvcc|cuda toolkit|not built|no addon built|build-cuda|built but cannot load/.test(r)) return "cuda-addon";
  if (/vulkan|lavapipe|mesa|webgpu adapter|dawn/.test(r)) return "vulkan";
  if (/chromium/.test(r)) return "chromium";
  if (/jupyter|nbclient|nbformat|ipykernel/.test(r)) return "jupyter";
  if (/python/.test(r)) return "python";
  return "other";
}

/** Why one test was skipped: its note, then "skipped:" in its title or an enclosing one, then the CI-only marks. */
export function skipReason(test: SkippedTest): SkipReason {
  const collapse = (text: string) => text.replace(/\s+/g, " ").trim();
  if (test.mode === "todo") return { reason: "todo", need: "other" };
  const own = test.titles.at(-1) ?? "";
  let reason = test.note !== undefined && test.note.trim() !== "" ? test.note : undefined;
  for (let i = test.titles.length - 1; reason === undefined && i >= 0; i--) reason = reasonInTitle(test.titles[i]!);
  if (reason === undefined && /\(required when CI is set\)|^CI\b/.test(own)) return { reason: CI_ONLY, need: "ci" };
  reason ??= probeReasonInTitle(own);
  if (reason === undefined) return { reason: NO_REASON, need: "other" };
  reason = collapse(reason);
  return { reason, need: needOf(reason) };
}

/** The skipped tests grouped by identical reason, the largest group first. */
export function groupSkips(tests: readonly SkippedTest[]): SkipGroup[] {
  const groups = new Map<string, { reason: string; need: Need; count: number; files: Set<string> }>();
  for (const test of tests) {
    const { reason, need } = skipReason(test);
    const group = groups.get(reason) ?? { reason, need, count: 0, files: new Set<string>() };
    group.count++;
    group.files.add(test.file);
    groups.set(reason, group);
  }
  return [...groups.values()]
    .map((g) => ({ reason: g.reason, need: g.need, count: g.count, files: [...g.files].sort() }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

const shorten = (text: string, width: number) => (text.length <= width ? text : `${text.slice(0, width - 1)}…`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export interface SummaryOptions {
  /** Reason lines at most; the rest are counted on one line. */
  readonly maxGroups?: number;
  /** Characters of a reason at most. */
  readonly reasonWidth?: number;
  /** A -t filter was given: the tests it left out count as skipped. */
  readonly nameFilter?: boolean;
}

/** The closing summary's lines: one when nothing was skipped, else about a dozen. */
export function skipSummary(tests: readonly SkippedTest[], total: number, options: SummaryOptions = {}): string[] {
  const { maxGroups = 8, reasonWidth = 100, nameFilter = false } = options;
  if (tests.length === 0) return [`Skipped: none, all ${plural(total, "test")} ran.`];
  const percent = total > 0 ? Math.round((100 * tests.length) / total) : 100;
  const filter = nameFilter ? " (with a -t filter: the tests it left out count here)" : "";
  const lines = [`Skipped ${tests.length} of ${plural(total, "test")} (${percent}%)${filter}, by reason:`];
  const groups = groupSkips(tests);
  const width = String(groups[0]!.count).length;
  for (const g of groups.slice(0, maxGroups)) {
    const files = g.files.length <= 2 ? g.files.join(", ") : `${g.files.slice(0, 2).join(", ")} +${g.files.length - 2}`;
    lines.push(`  ${String(g.count).padStart(width)}  ${shorten(g.reason, reasonWidth)}  [${files}]`);
  }
  const rest = groups.slice(maxGroups);
  if (rest.length > 0) {
    const count = rest.reduce((sum, g) => sum + g.count, 0);
    lines.push(`  ${plural(rest.length, "more reason")} (${plural(count, "test")})`);
  }

  const countOf = (need: Need) => groups.filter((g) => g.need === need).reduce((sum, g) => sum + g.count, 0);
  const installable = (Object.keys(INSTALLABLE) as Need[]).filter((need) => countOf(need) > 0);
  if (installable.length > 0) {
    const count = installable.reduce((sum, need) => sum + countOf(need), 0);
    const what = installable.map((need) => INSTALLABLE[need]).join(", ");
    lines.push(`${count} of them need ${what}: to install them (Debian/apt, the steps .ci/run takes), then rerun:`);
    lines.push(`  ${INSTALL_COMMAND} && npm test`);
  }
  const gpu = countOf("gpu");
  if (gpu > 0) lines.push(`${plural(gpu, "test needs", "tests need")} an NVIDIA GPU: cannot be installed.`);
  const addon = countOf("cuda-addon");
  if (addon > 0) {
    lines.push(
      `${plural(addon, "test needs", "tests need")} the CUDA addon: the CUDA toolkit's nvcc (not installed by the ` +
        "script), then npm run build:cuda.",
    );
  }
  const ci = countOf("ci");
  if (ci > 0) {
    lines.push(
      `${plural(ci, "check runs", "checks run")} only with CI set: CI=1 npm test runs them, and fails instead of ` +
        "skipping where something is missing.",
    );
  }
  return lines;
}

/** A test's titles from the outermost describe to its own. */
function titlesOf(test: TestCase): string[] {
  const titles = [test.name];
  for (let parent: TestSuite | TestModule = test.parent; parent.type === "suite"; parent = parent.parent) {
    titles.unshift(parent.name);
  }
  return titles;
}

export default class SkipSummaryReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const log = (line: string) => (this.vitest ? this.vitest.logger.log(line) : console.log(line));
    try {
      const skipped: SkippedTest[] = [];
      let total = 0;
      for (const module of testModules) {
        for (const test of module.children.allTests()) {
          total++;
          const result = test.result();
          if (result.state !== "skipped") continue;
          skipped.push({
            file: module.relativeModuleId,
            titles: titlesOf(test),
            note: result.note,
            mode: test.options.mode,
          });
        }
      }
      if (total === 0) return;
      const nameFilter = this.vitest?.config.testNamePattern !== undefined;
      log("");
      for (const line of skipSummary(skipped, total, { nameFilter })) log(line);
    } catch (error) {
      // A summary that cannot be made must not turn a run into a failure.
      log(`(skip summary unavailable: ${error instanceof Error ? error.message : String(error)})`);
    }
  }
}
