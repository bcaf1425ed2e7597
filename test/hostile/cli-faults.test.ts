/**
 * The command line's fault suite: what a hostile user (or a bad day) does to `grpo-roc`, by class. Every case runs
 * the built bin (dist/cli.js) as a child process and asserts the contract: the exit code of the README's table
 * (0 ok, 1 invalid input, 2 usage, 3 a file that cannot be read or written, 128 + n after signal n), targets untouched
 * on failure, no temporary file left behind (the folders are listed whole, the private TMPDIR included), and every
 * input line in the output exactly once when a run succeeds.
 *
 * Nothing here touches /dev: FIFOs, symbolic links, hard links and sockets are made in a temporary folder. Root
 * ignores folder permissions, so "cannot write" runs the bin as nobody (setpriv); a full disk is `ulimit -f`.
 * Random signal points are seeded; the seed is printed, and GRPO_ROC_FAULT_SEED replays a run.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOSTILE_SEED } from "./shared.js";
import { advantagePresets, advantages, resampleOnCorrect, type Rollout } from "../../src/index.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(root, "dist", "cli.js");

/** The README's exit-code table. */
const EXIT = { ok: 0, invalidInput: 1, usage: 2, file: 3 } as const;
const SIGNAL_EXIT = { SIGHUP: 129, SIGINT: 130, SIGQUIT: 131, SIGALRM: 142, SIGTERM: 143 } as const;

// ---------------------------------------------------------------------------------------------------------------
// What was tried, by class: printed at the end for the closing note (cases; errors vs documented behaviours).

type FaultClass =
  | "same-file"
  | "non-regular"
  | "commit"
  | "huge lines"
  | "UTF-8/control bytes"
  | "signals"
  | "exit codes"
  | "ids"
  | "closed pipes"
  | "broken lines";
const tried = new Map<FaultClass, { errors: number; documented: number }>();
/** Counts one case: an error (a non-zero exit the contract asks for) or a behaviour the README documents. */
function count(kind: FaultClass, outcome: "error" | "documented"): void {
  const entry = tried.get(kind) ?? { errors: 0, documented: 0 };
  if (outcome === "error") entry.errors++;
  else entry.documented++;
  tried.set(kind, entry);
}

const seed = Number(process.env.GRPO_ROC_FAULT_SEED ?? HOSTILE_SEED);
afterAll(() => {
  const rows = [...tried].map(([kind, { errors, documented }]) => {
    const cases = String(errors + documented).padStart(3);
    return `  ${kind.padEnd(20)} ${cases} cases: ${errors} errors, ${documented} documented`;
  });
  const total = [...tried.values()].reduce((sum, { errors, documented }) => sum + errors + documented, 0);
  console.log(`command-line fault suite (seed ${seed}), ${total} cases:\n${rows.join("\n")}`);
});

// ---------------------------------------------------------------------------------------------------------------
// Harness

let base = "";
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  base = mkdtempSync(join(tmpdir(), "grpo-roc-faults-"));
  // nobody (the unprivileged cases) must reach the case folders.
  chmodSync(base, 0o755);
});
afterAll(() => {
  if (base !== "") rmSync(base, { recursive: true, force: true });
});

/** A fresh folder for one case, and a private TMPDIR beside it (where stdin is spooled). */
function workspace(): { dir: string; tmp: string } {
  const caseDir = mkdtempSync(join(base, "case-"));
  chmodSync(caseDir, 0o755);
  const dir = join(caseDir, "files");
  const tmp = join(caseDir, "tmp");
  mkdirSync(dir, { mode: 0o777 });
  mkdirSync(tmp, { mode: 0o777 });
  chmodSync(dir, 0o777);
  chmodSync(tmp, 0o777);
  return { dir, tmp };
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  readonly input?: string | Buffer;
  readonly tmp?: string;
  /** Shell lines run before the bin (`ulimit -f 0`), through bash. */
  readonly shell?: string;
  /** Run as nobody: root ignores folder permissions. */
  readonly unprivileged?: boolean;
  readonly cwd?: string;
}

const isRoot = process.getuid?.() === 0;
const setprivWorks = spawnSync("setpriv", ["--version"]).status === 0;

/** Runs the bin; as nobody through setpriv when the tests run as root. */
function grpo(args: readonly string[], options: RunOptions = {}): Run {
  let command = [process.execPath, CLI, ...args];
  if (options.unprivileged && isRoot) {
    command = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", ...command];
  }
  if (options.shell !== undefined) command = ["bash", "-c", `${options.shell}; exec "$@"`, "bash", ...command];
  const result = spawnSync(command[0]!, command.slice(1), {
    input: options.input ?? "",
    cwd: options.cwd,
    env: { ...process.env, TMPDIR: options.tmp ?? tmpdir() },
    maxBuffer: 1 << 28,
    timeout: 60_000,
  });
  return {
    code: result.status,
    signal: result.signal,
    stdout: result.stdout.toString("utf8"),
    stderr: result.stderr.toString("utf8"),
  };
}

/**
 * The unprivileged cases need setpriv when run as root. Without it they are skipped, with the reason, outside CI;
 * in CI (CI set) a missing setpriv fails, so that the cases cannot silently stop running.
 */
const unprivilegedCase = (name: string, body: () => void) => {
  if (!isRoot || setprivWorks) return it(name, body);
  if (process.env.CI)
    return it(name, () => expect.fail("setpriv is missing: the read-only cases cannot run as nobody"));
  return it.skip(`${name} (skipped: running as root without setpriv, which the read-only cases need)`, body);
};

/** A structured rollout every command accepts: positive or not, with quality inputs. */
function rollout(group: string | number, k: number, reward: number): string {
  const groupId = typeof group === "number" ? String(group) : JSON.stringify(group);
  return `{"groupId":${groupId},"id":"r${k}","reward":${reward},"toolCalls":[],"answers":1,"turns":1}`;
}

/** `groups` groups of `size` rollouts, mixed rewards, as JSON Lines. */
function jsonl(groups: number, size = 4, prefix = "g"): string {
  const lines: string[] = [];
  for (let g = 0; g < groups; g++) for (let k = 0; k < size; k++) lines.push(rollout(`${prefix}${g}`, k, (g + k) % 2));
  return `${lines.join("\n")}\n`;
}

function records(stdout: string): Array<{ [key: string]: unknown; line: number }> {
  return stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { line: number });
}

/** Every non-empty input line is in the output exactly once, in order. */
function expectEveryLineOnce(output: string, input: string | Buffer): void {
  const text = typeof input === "string" ? Buffer.from(input) : input;
  const lines: number[] = [];
  let start = 0;
  let number = 0;
  while (start < text.length) {
    const end = text.indexOf(0x0a, start);
    const line = text.subarray(start, end < 0 ? text.length : end);
    number++;
    if (line.toString("latin1").trim() !== "") lines.push(number);
    start = end < 0 ? text.length : end + 1;
  }
  expect(records(output).map((r) => r.line)).toEqual(lines);
}

function expectListing(dir: string, names: readonly string[]): void {
  expect(readdirSync(dir).sort()).toEqual([...names].sort());
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function mkfifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

/** A seeded generator (mulberry32) for the random points. */
function random(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ADVANTAGES = ["advantages"];
const PIPELINE = ["pipeline", "-k", "2", "--seed", "1"];

// ---------------------------------------------------------------------------------------------------------------

describe("same-file targets: a usage error (2) before anything is read", () => {
  const cases: Array<[string, (dir: string) => { args: string[]; files: Record<string, string>; stdinFrom?: string }]> =
    [
      ["-o F --summary F", (dir) => ({ args: ["-o", join(dir, "F"), "--summary", join(dir, "F")], files: {} })],
      [
        "-o F --summary F, F existing",
        (dir) => ({ args: ["-o", join(dir, "F"), "--summary", join(dir, "F")], files: { F: "old\n" } }),
      ],
      [
        "-o F --summary sub/../F (through ..)",
        (dir) => {
          mkdirSync(join(dir, "sub"));
          return { args: ["-o", join(dir, "F"), "--summary", join(dir, "sub", "..", "F")], files: {} };
        },
      ],
      ["--summary naming the input", (dir) => ({ args: ["--summary", join(dir, "in.jsonl")], files: {} })],
      ["-o naming the input", (dir) => ({ args: ["-o", join(dir, "in.jsonl")], files: {} })],
      [
        "-o a symbolic link to the input",
        (dir) => {
          symlinkSync(join(dir, "in.jsonl"), join(dir, "link"));
          return { args: ["-o", join(dir, "link")], files: {} };
        },
      ],
      [
        "-o a hard link of the input",
        (dir) => {
          linkSync(join(dir, "in.jsonl"), join(dir, "hard"));
          return { args: ["-o", join(dir, "hard")], files: {} };
        },
      ],
      [
        "--summary a hard link of the -o file",
        (dir) => {
          writeFileSync(join(dir, "out"), "old\n");
          linkSync(join(dir, "out"), join(dir, "out-link"));
          return { args: ["-o", join(dir, "out"), "--summary", join(dir, "out-link")], files: {} };
        },
      ],
      [
        "-o a dangling link to T, --summary T",
        (dir) => {
          symlinkSync(join(dir, "T"), join(dir, "dangling"));
          return { args: ["-o", join(dir, "dangling"), "--summary", join(dir, "T")], files: {} };
        },
      ],
      [
        "-o relative and --summary absolute, the same new file",
        (dir) => ({ args: ["-o", "F", "--summary", join(dir, "F")], files: {} }),
      ],
      [
        "stdin redirected from the -o file (< F)",
        (dir) => ({ args: ["-o", join(dir, "in.jsonl"), "-"], files: {}, stdinFrom: join(dir, "in.jsonl") }),
      ],
    ];

  it.each(cases)("%s", (_name, setup) => {
    const { dir, tmp } = workspace();
    const input = jsonl(2);
    writeFileSync(join(dir, "in.jsonl"), input);
    const { args, files, stdinFrom } = setup(dir);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const before = Object.fromEntries(readdirSync(dir).map((name) => [name, snapshot(join(dir, name))]));
    const inputArgs = args.includes("-") ? [] : [join(dir, "in.jsonl")];
    const command = [...ADVANTAGES, ...args, ...inputArgs].map((a) => JSON.stringify(a)).join(" ");
    const shell = stdinFrom === undefined ? "true" : `exec < ${JSON.stringify(stdinFrom)}`;
    const run = grpo([...ADVANTAGES, ...args, ...inputArgs], { tmp, shell, cwd: dir });
    expect(run.code, `${command}\n${run.stderr}`).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/are one file: .*; give each its own file/);
    expect(run.stdout).toBe("");
    // Untouched: the same names, the same content and inodes; nothing left in TMPDIR.
    expect(Object.fromEntries(readdirSync(dir).map((name) => [name, snapshot(join(dir, name))]))).toEqual(before);
    expectListing(tmp, []);
    count("same-file", "error");
  });

  it("stdout redirected to the input file (>> F): the input is not read into itself", () => {
    const { dir, tmp } = workspace();
    const input = jsonl(2);
    const path = join(dir, "in.jsonl");
    writeFileSync(path, input);
    const run = grpo([...ADVANTAGES, path], { tmp, shell: `exec >> ${JSON.stringify(path)}` });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toContain(`the input ${path} and stdout are one file`);
    expect(readFileSync(path, "utf8")).toBe(input);
    count("same-file", "error");
  });

  it("the input and -o the same FIFO: refused before the FIFO is opened (no writer ever comes)", () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    const run = grpo([...ADVANTAGES, "-o", fifo, fifo], { tmp });
    expect(run.code).toBe(EXIT.usage);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["pipe"]);
    count("same-file", "error");
  });

  it("--summary - while the records go to stdout is a usage error; with -o FILE it prints the summary", () => {
    const { dir, tmp } = workspace();
    const input = jsonl(2);
    const clash = grpo([...ADVANTAGES, "--summary", "-", "-"], { input, tmp });
    expect(clash.code).toBe(EXIT.usage);
    expect(clash.stderr).toContain("--summary -: the records already go to stdout");
    count("same-file", "error");
    const fine = grpo([...ADVANTAGES, "-q", "-o", join(dir, "out"), "--summary", "-", "-"], { input, tmp });
    expect(fine.code).toBe(EXIT.ok);
    expect(JSON.parse(fine.stdout)).toMatchObject({ command: "advantages", lines: 8, rollouts: 8 });
    expectEveryLineOnce(readFileSync(join(dir, "out"), "utf8"), input);
    expectListing(dir, ["out"]);
    count("same-file", "documented");
  });
});

/** A file's content and inode, to tell "untouched" from "replaced by an identical copy". */
function snapshot(path: string): { ino: number; content: string } | { link: string } {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) return { link: readlinkText(path) };
  if (stats.isDirectory()) return { ino: stats.ino, content: "<dir>" };
  return { ino: stats.ino, content: readFileSync(path, "utf8") };
}

function readlinkText(path: string): string {
  return execFileSync("readlink", [path], { encoding: "utf8" });
}

// ---------------------------------------------------------------------------------------------------------------

describe("non-regular targets are written directly, never renamed over", () => {
  /** Runs the bin with its output going into a FIFO that this process reads; returns the run and what was read. */
  async function throughFifo(
    args: readonly string[],
    fifo: string,
    input: string,
    tmp: string,
  ): Promise<{ code: number | null; read: string; stderr: string }> {
    const reading = readFile(fifo, "utf8");
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, TMPDIR: tmp } });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(input);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    return { code, read: await reading, stderr };
  }

  it("-o FIFO: the records go through the FIFO, which stays a FIFO", async () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    const input = jsonl(50);
    const run = await throughFifo([...ADVANTAGES, "-q", "-o", fifo, "-"], fifo, input, tmp);
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.read, input);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["pipe"]);
    expectListing(tmp, []);
    count("non-regular", "documented");
  });

  it("-o a symbolic link to a FIFO: written through the link; the link and the FIFO stay", async () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    symlinkSync(fifo, join(dir, "link"));
    const input = jsonl(20);
    const run = await throughFifo([...PIPELINE, "-q", "-o", join(dir, "link"), "-"], fifo, input, tmp);
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.read, input);
    expect(lstatSync(join(dir, "link")).isSymbolicLink()).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["link", "pipe"]);
    count("non-regular", "documented");
  });

  it("--summary FIFO with -o FILE: the summary through the FIFO, the records renamed into FILE", async () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    const input = jsonl(5);
    const out = join(dir, "out.jsonl");
    const run = await throughFifo([...ADVANTAGES, "-q", "-o", out, "--summary", fifo, "-"], fifo, input, tmp);
    expect(run.code).toBe(EXIT.ok);
    expect(JSON.parse(run.read)).toMatchObject({ lines: 20, rollouts: 20, records: 20 });
    expectEveryLineOnce(readFileSync(out, "utf8"), input);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["out.jsonl", "pipe"]);
    count("non-regular", "documented");
  });

  it("-o FIFO and a bad line: exit 1; what went through cannot be taken back, the FIFO stays", async () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    const input = `${jsonl(3)}not json\n`;
    const run = await throughFifo([...ADVANTAGES, "-o", fifo, "-"], fifo, input, tmp);
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain("line 13: not JSON");
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["pipe"]);
    count("non-regular", "documented");
  });

  it("-o - is stdout: no file named -", () => {
    const { dir, tmp } = workspace();
    const input = jsonl(3);
    const run = grpo([...ADVANTAGES, "-q", "-o", "-", "-"], { input, tmp, cwd: dir });
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.stdout, input);
    expectListing(dir, []);
    count("non-regular", "documented");
  });

  it("-o a Unix socket: cannot be opened for writing, exit 3; the socket stays", async () => {
    const { dir, tmp } = workspace();
    const path = join(dir, "socket");
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const run = grpo([...ADVANTAGES, "-o", path, "-"], { input: jsonl(2), tmp });
      expect(run.code).toBe(EXIT.file);
      expect(run.stderr).toContain(`cannot write ${path}`);
      expect(lstatSync(path).isSocket()).toBe(true);
      expectListing(dir, ["socket"]);
    } finally {
      server.close();
    }
    count("non-regular", "error");
  });

  it.each([
    ["-o", "a directory"],
    ["--summary", "a directory"],
  ])("%s %s: exit 3, before anything is read", (flag) => {
    const { dir, tmp } = workspace();
    mkdirSync(join(dir, "folder"));
    const args =
      flag === "-o" ? ["-o", join(dir, "folder")] : ["-o", join(dir, "out"), "--summary", join(dir, "folder")];
    const run = grpo([...ADVANTAGES, ...args, "-"], { input: jsonl(2), tmp });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot write ${join(dir, "folder")}: it is a directory`);
    expectListing(dir, ["folder"]);
    count("non-regular", "error");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("the records and the summary are committed together, or neither", () => {
  it("both replaced on success: old modes kept, no temporary or backup file", () => {
    const { dir, tmp } = workspace();
    const [out, sum] = [join(dir, "out.jsonl"), join(dir, "sum.json")];
    writeFileSync(out, "old\n", { mode: 0o640 });
    writeFileSync(sum, "oldsum\n", { mode: 0o600 });
    chmodSync(out, 0o640);
    chmodSync(sum, 0o600);
    const input = jsonl(10);
    const run = grpo([...PIPELINE, "-q", "-o", out, "--summary", sum, "-"], { input, tmp });
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(readFileSync(out, "utf8"), input);
    expect(JSON.parse(readFileSync(sum, "utf8"))).toMatchObject({ lines: 40, records: 40 });
    expect([statSync(out).mode & 0o777, statSync(sum).mode & 0o777]).toEqual([0o640, 0o600]);
    expectListing(dir, ["out.jsonl", "sum.json"]);
    count("commit", "documented");
  });

  it("the summary cannot be renamed into place (its path became a directory): -o is put back as it was", async () => {
    const { dir, tmp } = workspace();
    const [out, sum] = [join(dir, "out.jsonl"), join(dir, "sum.json")];
    writeFileSync(out, "old\n");
    const child = spawn(process.execPath, [CLI, ...ADVANTAGES, "-o", out, "--summary", sum, "-"], {
      env: { ...process.env, TMPDIR: tmp },
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    child.stdin.write(jsonl(20));
    // Both temporary files exist once the targets are open; then the summary's path is taken by a folder.
    await waitFor(() => readdirSync(dir).filter((name) => name.endsWith(".tmp")).length === 2);
    mkdirSync(sum);
    child.stdin.end();
    expect(await closed).toBe(EXIT.file);
    expect(stderr).toContain(`cannot write ${sum}`);
    expect(readFileSync(out, "utf8")).toBe("old\n");
    expectListing(dir, ["out.jsonl", "sum.json"]);
    expect(statSync(sum).isDirectory()).toBe(true);
    count("commit", "error");
  });

  it("a full disk while writing the summary (ulimit -f 0): neither file is replaced", () => {
    const { dir, tmp } = workspace();
    const [out, sum] = [join(dir, "out.jsonl"), join(dir, "sum.json")];
    writeFileSync(out, "old\n");
    writeFileSync(sum, "oldsum\n");
    // Every group has equal rewards: --kept-only writes no record, so only the summary needs a byte.
    const input = `${[0, 1, 2].map((k) => rollout("same", k, 0)).join("\n")}\n`;
    const args = ["resample", "-k", "2", "--seed", "1", "--kept-only", "-o", out, "--summary", sum, "-"];
    const run = grpo(args, { input, tmp, shell: "ulimit -f 0" });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot write ${sum}: file too large (EFBIG)`);
    expect([readFileSync(out, "utf8"), readFileSync(sum, "utf8")]).toEqual(["old\n", "oldsum\n"]);
    expectListing(dir, ["out.jsonl", "sum.json"]);
    count("commit", "error");
  });

  it("a full disk while writing the records (ulimit -f 1): exit 3, both untouched", () => {
    const { dir, tmp } = workspace();
    const [out, sum] = [join(dir, "out.jsonl"), join(dir, "sum.json")];
    writeFileSync(out, "old\n");
    const run = grpo([...ADVANTAGES, "-o", out, "--summary", sum, "-"], {
      input: jsonl(200),
      tmp,
      shell: "ulimit -f 1",
    });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot write ${out}: file too large (EFBIG)`);
    expect(readFileSync(out, "utf8")).toBe("old\n");
    expectListing(dir, ["out.jsonl"]);
    count("commit", "error");
  });

  it("a full disk while spooling stdin for the batch std (ulimit -f 1): exit 3, the spool removed", () => {
    const { dir, tmp } = workspace();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old\n");
    const run = grpo(["advantages", "--preset", "trlBatch", "-o", out, "-"], {
      input: jsonl(200),
      tmp,
      shell: "ulimit -f 1",
    });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain("cannot copy stdin to");
    expect(readFileSync(out, "utf8")).toBe("old\n");
    expectListing(dir, ["out.jsonl"]);
    expectListing(tmp, []);
    count("commit", "error");
  });

  unprivilegedCase("-o in a read-only folder: exit 3, the message names the folder, nothing read", () => {
    const { dir, tmp } = workspace();
    const locked = join(dir, "locked");
    mkdirSync(locked);
    // The file itself is writable: only the folder is not.
    writeFileSync(join(locked, "out.jsonl"), "old\n");
    chmodSync(join(locked, "out.jsonl"), 0o666);
    chmodSync(locked, 0o555);
    writeFileSync(join(dir, "in.jsonl"), jsonl(2), { mode: 0o644 });
    const run = grpo([...ADVANTAGES, "-o", join(locked, "out.jsonl"), join(dir, "in.jsonl")], {
      tmp,
      unprivileged: true,
    });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot create a file in its folder ${locked}`);
    expect(run.stderr).toContain("permission denied (EACCES)");
    expect(run.stderr).not.toContain("--help");
    expect(readFileSync(join(locked, "out.jsonl"), "utf8")).toBe("old\n");
    expectListing(locked, ["out.jsonl"]);
    count("commit", "error");
  });

  unprivilegedCase("--summary in a read-only folder: exit 3 before anything is read; -o untouched", () => {
    const { dir, tmp } = workspace();
    const locked = join(dir, "locked");
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    writeFileSync(join(dir, "out.jsonl"), "old\n", { mode: 0o666 });
    chmodSync(join(dir, "out.jsonl"), 0o666);
    const run = grpo([...ADVANTAGES, "-o", join(dir, "out.jsonl"), "--summary", join(locked, "s.json"), "-"], {
      input: jsonl(2),
      tmp,
      unprivileged: true,
    });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot create a file in its folder ${locked}`);
    expect(readFileSync(join(dir, "out.jsonl"), "utf8")).toBe("old\n");
    expectListing(dir, ["locked", "out.jsonl"]);
    count("commit", "error");
  });

  unprivilegedCase("-o a write-protected file in a writable folder: refused (exit 3), as `>` would", () => {
    const { dir, tmp } = workspace();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old\n");
    chmodSync(out, 0o444);
    const run = grpo([...ADVANTAGES, "-o", out, "-"], { input: jsonl(2), tmp, unprivileged: true });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot write -o ${out}: permission denied (EACCES)`);
    expect(readFileSync(out, "utf8")).toBe("old\n");
    expectListing(dir, ["out.jsonl"]);
    count("commit", "error");
  });

  unprivilegedCase("an input that cannot be read: exit 3, naming it", () => {
    const { dir, tmp } = workspace();
    const path = join(dir, "in.jsonl");
    writeFileSync(path, jsonl(2));
    chmodSync(path, 0o000);
    const run = grpo([...ADVANTAGES, path], { tmp, unprivileged: true });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(`cannot read ${path}: permission denied (EACCES)`);
    count("commit", "error");
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the child");
    await sleep(10);
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe("huge lines: an invalid line with its number, read in bounded memory", () => {
  const LIMIT = 1000;
  /** A valid line of exactly `bytes` bytes. */
  const long = (bytes: number) => {
    const head = '{"groupId":"g0","reward":1,"pad":"';
    return `${head}${"x".repeat(bytes - head.length - 2)}"}`;
  };

  it("a line over --max-line-bytes stops the run with its number (exit 1)", () => {
    const { tmp } = workspace();
    const input = `${rollout("g0", 0, 1)}\n${rollout("g0", 1, 0)}\n${long(5000)}\n`;
    const run = grpo([...ADVANTAGES, "--max-line-bytes", String(LIMIT), "-"], { input, tmp });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain(`line 3: 5000 bytes, over the limit of ${LIMIT} bytes a line (--max-line-bytes)`);
    expect(run.stdout).toBe("");
    count("huge lines", "error");
  });

  it("under --skip-invalid it is an invalid record, counted; every line accounted for", () => {
    const { dir, tmp } = workspace();
    const input = `${rollout("g0", 0, 1)}\n${long(3_000_000)}\n${rollout("g0", 1, 0)}\n${long(LIMIT + 1)}`;
    const sum = join(dir, "sum.json");
    const run = grpo([...ADVANTAGES, "--skip-invalid", "--max-line-bytes", String(LIMIT), "--summary", sum, "-"], {
      input,
      tmp,
    });
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.stdout, input);
    const invalid = records(run.stdout).filter((r) => r.reasonCode === "invalid");
    expect(invalid.map((r) => [r.line, r.reason])).toEqual([
      [
        2,
        `invalid: 3000000 bytes, over the limit of ${LIMIT} bytes a line (--max-line-bytes); the line was skipped ` +
          "unparsed, holding no more than the limit in memory",
      ],
      [4, expect.stringContaining(`${LIMIT + 1} bytes, over the limit`)],
    ]);
    expect(JSON.parse(readFileSync(sum, "utf8"))).toMatchObject({ lines: 4, invalidLines: 2, rollouts: 2 });
    count("huge lines", "documented");
  });

  it("a line of exactly the limit is read; one byte more is not", () => {
    const { tmp } = workspace();
    const line = rollout("g0", 0, 1);
    const at = grpo([...ADVANTAGES, "--max-line-bytes", String(line.length), "-"], { input: `${line}\n`, tmp });
    expect(at.code).toBe(EXIT.ok);
    count("huge lines", "documented");
    const under = grpo([...ADVANTAGES, "--max-line-bytes", String(line.length - 1), "-"], { input: `${line}\n`, tmp });
    expect(under.code).toBe(EXIT.invalidInput);
    expect(under.stderr).toContain(`line 1: ${line.length} bytes, over the limit`);
    count("huge lines", "error");
  });

  it("a 200 MB line under the default limit costs bounded memory (the line is never held)", async () => {
    const { dir, tmp } = workspace();
    const path = join(dir, "huge.jsonl");
    // 200 MB of one line between two good ones, written in pieces.
    const piece = "x".repeat(1 << 20);
    writeFileSync(path, `${rollout("g0", 0, 1)}\n{"groupId":"g0","reward":1,"pad":"`);
    for (let k = 0; k < 200; k++) writeFileSync(path, piece, { flag: "a" });
    writeFileSync(path, `"}\n${rollout("g0", 1, 0)}\n`, { flag: "a" });
    const rss = join(dir, "rss");
    const peak = pathToPeakRss();
    const run = spawnSync(process.execPath, ["--import", peak, CLI, ...ADVANTAGES, "--skip-invalid", "-q", path], {
      env: { ...process.env, TMPDIR: tmp, GRPO_ROC_PEAK_RSS_FILE: rss },
      encoding: "utf8",
      maxBuffer: 1 << 24,
    });
    expect(run.status).toBe(EXIT.ok);
    expect(records(run.stdout).map((r) => [r.line, r.reasonCode ?? "kept"])).toEqual([
      [1, "kept"],
      [2, "invalid"],
      [3, "kept"],
    ]);
    // Holding the line would take 200 MB for its bytes alone, and as much again as a string; the reader keeps at
    // most the limit's 64 MiB of it (to know it is too long) above Node's ~80 MB, whatever the line's length.
    expect(Number(readFileSync(rss, "utf8"))).toBeLessThan(200e6);
    count("huge lines", "documented");
  });

  it.each([["0"], ["-5"], ["0x400"], ["1e3"], ["1000.0"], ["536870889"], [""]])(
    "--max-line-bytes %j is a usage error",
    (value) => {
      const run = grpo([...ADVANTAGES, `--max-line-bytes=${value}`, "-"], { input: jsonl(1) });
      expect(run.code).toBe(EXIT.usage);
      expect(run.stderr).toContain("--max-line-bytes: expected an integer");
      count("huge lines", "error");
    },
  );
});

function pathToPeakRss(): string {
  return new URL("../fixtures/cli/peak-rss.mjs", import.meta.url).href;
}

// ---------------------------------------------------------------------------------------------------------------

describe("UTF-8 and control bytes", () => {
  const good = (k: number) => rollout("g0", k, k % 2);
  const withBytes = (bytes: number[]) =>
    Buffer.concat([
      Buffer.from(`${good(0)}\n{"groupId":"g0","reward":1,"note":"`),
      Buffer.from(bytes),
      Buffer.from(`"}\n${good(1)}\n`),
    ]);

  it.each([
    ["a stray 0xFF", [0xff]],
    ["a lone continuation byte", [0x80]],
    ["an overlong form of /", [0xc0, 0xaf]],
    ["an overlong three-byte form", [0xe0, 0x80, 0xaf]],
    ["a UTF-16 surrogate encoded", [0xed, 0xa0, 0x80]],
    ["a code point beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["a truncated sequence", [0xe2, 0x82]],
    ["Latin-1 é", [0xe9]],
  ])("%s: an error naming the line, never U+FFFD (exit 1)", (_name, bytes) => {
    const { tmp } = workspace();
    const run = grpo([...ADVANTAGES, "-"], { input: withBytes(bytes), tmp });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toMatch(/line 2: not UTF-8: invalid byte sequence at byte \d+ of the line \(0x/);
    expect(run.stdout).toBe("");
    count("UTF-8/control bytes", "error");
  });

  it("a file in UTF-16 (its byte-order mark is not UTF-8): line 1", () => {
    const { tmp } = workspace();
    const input = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${good(0)}\n`, "utf16le")]);
    const run = grpo([...ADVANTAGES, "-"], { input, tmp });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain("line 1: not UTF-8");
    count("UTF-8/control bytes", "error");
  });

  it("a truncated sequence at the very end of the input (no final newline)", () => {
    const { tmp } = workspace();
    const input = Buffer.concat([
      Buffer.from(`${good(0)}\n{"groupId":"g0","reward":1,"note":"`),
      Buffer.from([0xf0, 0x9f]),
    ]);
    const run = grpo([...ADVANTAGES, "-"], { input, tmp });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain("line 2: not UTF-8");
    count("UTF-8/control bytes", "error");
  });

  it("under --skip-invalid --include-rollout: the bad line is invalid, the others come back byte for byte", () => {
    const { tmp } = workspace();
    const text = `{"groupId":"g0","reward":1,"note":"caf\\u00e9 ✓ 𝔘 \\ud83d","n":1.50,"big":18446744073709551615}`;
    const input = Buffer.concat([Buffer.from(`${text}\n`), withBytes([0xff]).subarray(good(0).length + 1)]);
    const run = grpo([...ADVANTAGES, "--skip-invalid", "--include-rollout", "-"], { input, tmp });
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.stdout, input);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toContain(`,"rollout":${text}}`);
    expect(records(run.stdout)[1]).toMatchObject({ line: 2, reasonCode: "invalid", id: null, groupId: null });
    count("UTF-8/control bytes", "documented");
  });

  it("a UTF-8 byte-order mark at the start is read as nothing; multi-byte text passes whole", () => {
    const { tmp } = workspace();
    const line = `{"groupId":"组-1 ✓ 🚀","reward":1,"transcript":"<answer>√2 ≈ 1.414</answer>"}`;
    const input = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${line}\n`)]);
    const run = grpo(["penalties", "--include-rollout", "-"], { input, tmp });
    expect(run.code).toBe(EXIT.ok);
    expect(run.stdout).toContain(`"groupId":"组-1 ✓ 🚀"`);
    expect(run.stdout).toContain(`,"rollout":${line}}`);
    count("UTF-8/control bytes", "documented");
  });

  const ESC = "\u001b";
  it.each([
    ["a line that is not JSON, with ESC and BEL", `${ESC}[31mred${ESC}]0;owned\u0007`, "\\x1b[31mred"],
    ["a line that is not JSON, with a C1 CSI and DEL", `\u009b31m\u007f`, "\\x9b31m\\x7f"],
    ["a line that is not JSON, with a right-to-left override", `\u202eabc`, "\\u202eabc"],
  ])("%s: escaped on stderr, the record keeps the text as JSON", (_name, line, shown) => {
    const { tmp } = workspace();
    const stop = grpo([...ADVANTAGES, "-"], { input: `${line}\n`, tmp });
    expect(stop.code).toBe(EXIT.invalidInput);
    expect(stop.stderr).toContain(shown);
    expectNoTerminalControls(stop.stderr);
    const skip = grpo([...ADVANTAGES, "--skip-invalid", "-"], { input: `${line}\n${good(0)}\n`, tmp });
    expect(skip.code).toBe(EXIT.ok);
    expect(skip.stderr).toContain(`skipped line 1: not JSON`);
    expectNoTerminalControls(skip.stderr);
    count("UTF-8/control bytes", "error");
  });

  it("a group id with control characters, in a message about the group: escaped", () => {
    const { tmp } = workspace();
    const id = `a\u009b2J\u202e`;
    const input = [rollout(id, 0, 1), rollout("b", 0, 1), rollout(id, 1, 0)].join("\n");
    const run = grpo([...ADVANTAGES, "-"], { input, tmp });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain("line 3: groupId: group");
    expect(run.stderr).toContain("\\x9b2J\\u202e");
    expectNoTerminalControls(run.stderr);
    count("UTF-8/control bytes", "error");
  });

  it("a file name with an escape sequence, in 'cannot read': escaped", () => {
    const { dir, tmp } = workspace();
    const run = grpo([...ADVANTAGES, join(dir, `${ESC}[2Jmissing`)], { tmp });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain("\\x1b[2Jmissing");
    expectNoTerminalControls(run.stderr);
    count("UTF-8/control bytes", "error");
  });
});

/** No C0 control but newline, no DEL, C1 or bidirectional override reaches the terminal. */
function expectNoTerminalControls(text: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point.
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
}

// ---------------------------------------------------------------------------------------------------------------

describe("signals at random points: temporary files removed, exit 128 + n", () => {
  const next = random(seed);
  const signals = Object.keys(SIGNAL_EXIT) as Array<keyof typeof SIGNAL_EXIT>;
  /**
   * Where the signal lands: while an --import module loads (handlers installed, nothing made yet), while stdin is
   * spooled for the batch std (the spool and both temporary files exist), while records stream into the temporary
   * file; and, for two signals, while Node itself boots, before grpo-roc's first line runs.
   */
  const phases = ["loading", "spooling", "streaming"] as const;
  const cases = [
    ...signals.flatMap((signal) => phases.map((phase) => [signal, phase, Math.floor(next() * 300)] as const)),
    ["SIGINT", "booting", Math.floor(next() * 30)] as const,
    ["SIGTERM", "booting", Math.floor(next() * 30)] as const,
  ];

  it.each(cases)(`%s while %s, %i ms in (seed ${seed})`, async (signal, phase, delay) => {
    const { dir, tmp } = workspace();
    const [out, sum] = [join(dir, "out.jsonl"), join(dir, "sum.json")];
    writeFileSync(out, "old\n");
    writeFileSync(sum, "oldsum\n");
    const loaded = join(tmp, "..", "loaded");
    const slowModule = join(tmp, "..", "slow.mjs");
    writeFileSync(
      slowModule,
      `import { writeFileSync } from "node:fs";\nexport default async () => {\n  writeFileSync(${JSON.stringify(loaded)}, "");\n` +
        "  await new Promise((resolve) => setTimeout(resolve, 20_000));\n};\n",
    );
    const args =
      phase === "spooling"
        ? ["advantages", "--preset", "trlBatch"]
        : phase === "loading"
          ? ["advantages", "--import", slowModule]
          : PIPELINE;
    const child = spawn(process.execPath, [CLI, ...args, "-o", out, "--summary", sum, "-"], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ["pipe", "ignore", "ignore"],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, killedBy) => resolve({ code, signal: killedBy })),
    );
    child.stdin.on("error", () => {});
    // Input keeps coming and stdin stays open: the run cannot end before the signal.
    let batch = 0;
    const feed = setInterval(() => child.stdin.write(jsonl(20, 4, `b${batch++}-`)), 5);
    try {
      if (phase === "loading") await waitFor(() => existsSync(loaded));
      if (phase === "spooling" || phase === "streaming") {
        await waitFor(() => readdirSync(dir).some((name) => name.endsWith(".tmp")));
      }
      if (phase === "spooling") await waitFor(() => readdirSync(tmp).length > 0);
      await sleep(delay);
      child.kill(signal);
      const result = await exited;
      if (phase === "booting" && result.signal === signal) {
        // Before grpo-roc's first line ran there was nothing to remove: the signal's default action, documented.
        count("signals", "documented");
      } else {
        expect(result.code).toBe(SIGNAL_EXIT[signal]);
        count("signals", "error");
      }
    } finally {
      clearInterval(feed);
    }
    expect([readFileSync(out, "utf8"), readFileSync(sum, "utf8")]).toEqual(["old\n", "oldsum\n"]);
    expectListing(dir, ["out.jsonl", "sum.json"]);
    expectListing(tmp, []);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("exit codes follow one rule", () => {
  it.each([
    [["resample", "-k", "0x10", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["resample", "-k", "1e1", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["resample", "-k", "16.0", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["resample", "-k", " 16", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["resample", "-k", "0b11", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["resample", "-k", "99999999999999999999", "--seed", "1"], "--keep: expected an integer in plain decimal digits"],
    [["advantages", "--epsilon", "0x1p-20"], "--epsilon: expected a decimal number (such as 0.5 or 1e-6)"],
    [["advantages", "--epsilon", "Infinity"], "--epsilon: expected a decimal number (such as 0.5 or 1e-6)"],
    [["penalties", "--error-weight", "1_000"], "--error-weight: expected a decimal number"],
    [["penalties", "--no-tool-call-penalty", ".5."], "--no-tool-call-penalty: expected a decimal number"],
    [
      ["resample", "-k", "4", "--mode", "reference", "--min-negatives", "+2"],
      "--min-negatives: expected an integer in plain decimal digits",
    ],
    [["advantages", "--frobnicate"], "Unknown option '--frobnicate'"],
    [["advantages", "--repeated-groups", "merge"], "--repeated-groups: expected one of error, separate"],
  ])("%j: a usage error (2) with a pointer to --help", (args, message) => {
    const run = grpo([...args, "-"], { input: jsonl(1) });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain("--help' for the options");
    count("exit codes", "error");
  });

  it.each([
    ["--epsilon 1e-6", ["advantages", "--epsilon", "1e-6"]],
    ["--epsilon .5", ["advantages", "--epsilon", ".5"]],
    ["-k 016 (decimal, not octal)", ["pipeline", "-k", "016", "--seed", "1"]],
  ])("%s: decimal as documented", (_name, args) => {
    const run = grpo([...args, "-q", "-"], { input: jsonl(2) });
    expect(run.code).toBe(EXIT.ok);
    count("exit codes", "documented");
  });

  it("each command's --help states the rule", () => {
    const help = grpo(["resample", "--help"]).stdout;
    expect(help).toContain("2 usage error (a wrong or");
    expect(help).toContain("3 a file that cannot be read or written");
    expect(help).toContain("128+n on signal n (130 SIGINT, 143 SIGTERM");
    expect(help).toContain("Numbers are decimal");
    expect(help).toContain("--max-line-bytes N");
  });

  it.each([
    ["a missing input", (dir: string) => [join(dir, "missing.jsonl")], "no such file or directory (ENOENT)"],
    ["an input that is a directory", (dir: string) => [dir], "it is a directory"],
    ["-o in a missing folder", (dir: string) => ["-o", join(dir, "no", "out"), "-"], "no such file or directory"],
  ])("%s: exit 3", (_name, args, message) => {
    const { dir, tmp } = workspace();
    const run = grpo([...ADVANTAGES, ...args(dir)], { input: jsonl(1), tmp });
    expect(run.code).toBe(EXIT.file);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toContain("--help");
    expectListing(dir, []);
    count("exit codes", "error");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("identity: ids beyond 2^53 kept exactly, duplicates refused", () => {
  const big = "18446744073709551615";
  const bigLess = "18446744073709551614";
  const [above, at] = ["9007199254740993", "9007199254740992"];

  it("integer group ids beyond 2^53 that a float64 would merge stay distinct groups, written back verbatim", () => {
    const input = [
      `{"groupId":${above},"id":${big},"reward":1}`,
      `{"groupId":${above},"id":${bigLess},"reward":0}`,
      `{"groupId":${at},"id":${big},"reward":1}`,
      `{"groupId":${at},"id":${bigLess},"reward":1}`,
    ].join("\n");
    const run = grpo([...ADVANTAGES, "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    const lines = run.stdout.trim().split("\n");
    expect(lines.map((line) => /"id":(\d+),"groupId":(\d+)/.exec(line)!.slice(1))).toEqual([
      [big, above],
      [bigLess, above],
      [big, at],
      [bigLess, at],
    ]);
    // Two groups: (1, 0) gives ±0.707, (1, 1) gives 0 and 0; merged they would be one group of four.
    const groupIds = [BigInt(above), BigInt(above), BigInt(at), BigInt(at)];
    const expected = advantages([1, 0, 1, 1], groupIds, advantagePresets.verl);
    expect(records(run.stdout).map((r) => r.advantage)).toEqual(Array.from(expected));
    expect(run.stderr).toContain("2 groups");
    count("ids", "documented");
  });

  it("paper-mode draws of a bigint group are the library's with BigInt ids", () => {
    const rows = Array.from({ length: 6 }, (_, k) => ({
      groupId: BigInt(big),
      id: BigInt(`1844674407370955161${k}`),
      reward: k % 3 === 0 ? 0 : 1,
      toolCalls: [],
      answers: 1,
      turns: 1,
    }));
    const input = rows
      .map((row) => `{"groupId":${big},"id":${row.id},"reward":${row.reward},"toolCalls":[],"answers":1,"turns":1}`)
      .join("\n");
    const run = grpo(["resample", "-k", "3", "--seed", "7", "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    const library = resampleOnCorrect(rows as Rollout[], { keepPerGroup: 3, seed: 7 });
    const kept = records(run.stdout).flatMap((r, k) => (r.dropped ? [] : [k]));
    expect(kept).toEqual(Array.from(library.kept));
    count("ids", "documented");
  });

  it('1, 1.0 and 1e0 are one group (the same number), "1" another; each id comes back as written', () => {
    const input = [
      '{"groupId":1,"id":1.50,"reward":1}',
      '{"groupId":1.0,"id":-0,"reward":0}',
      '{"groupId":1e0,"id":2E1,"reward":1}',
      '{"groupId":"1","id":"1","reward":1}',
    ].join("\n");
    const run = grpo([...ADVANTAGES, "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    const heads = run.stdout
      .trim()
      .split("\n")
      .map((line) => /^\{"line":\d+,"id":([^,]+),"groupId":([^,]+),/.exec(line)!.slice(1));
    expect(heads).toEqual([
      ["1.50", "1"],
      ["-0", "1.0"],
      ["2E1", "1e0"],
      ['"1"', '"1"'],
    ]);
    expect(run.stderr).toContain("2 groups");
    count("ids", "documented");
  });

  it("--include-rollout copies each line verbatim: big integers, escapes and number spellings intact", () => {
    const line = `{"groupId":${big},"id":${above},"reward":1.0,"note":"\\u0041\\/","x":[1e2,-0.0]}`;
    const run = grpo([...ADVANTAGES, "--include-rollout", "-"], { input: `  ${line}\t\n` });
    expect(run.code).toBe(EXIT.ok);
    expect(run.stdout.startsWith(`{"line":1,"id":${above},"groupId":${big},"dropped":false,`)).toBe(true);
    expect(run.stdout.endsWith(`,"rollout":${line}}\n`)).toBe(true);
    count("ids", "documented");
  });

  it.each([
    [
      "a duplicate string id",
      ['{"groupId":"g","id":"a","reward":1}', '{"groupId":"g","id":"a","reward":0}'],
      'line 2: id: duplicate id "a" in group "g" (line 1)',
    ],
    [
      "a duplicate big integer id",
      [`{"groupId":"g","id":${big},"reward":1}`, `{"groupId":"g","id":${big},"reward":0}`],
      `line 2: id: duplicate id ${big} in group "g" (line 1)`,
    ],
    [
      "1 and 1.0 as ids of one group",
      ['{"groupId":"g","id":1,"reward":1}', '{"groupId":"g","id":1.0,"reward":0}'],
      "line 2: id: duplicate id 1.0",
    ],
    [
      "a duplicate in a bigint group",
      [`{"groupId":${above},"id":"x","reward":1}`, `{"groupId":${above},"id":"x","reward":0}`],
      `in group ${above} (line 1)`,
    ],
  ])("%s is an error naming both lines (exit 1)", (_name, lines, message) => {
    for (const command of [ADVANTAGES, PIPELINE, ["penalties"]]) {
      const input = lines.map((line) => line.replace("}", ',"toolCalls":[],"answers":1,"turns":1}')).join("\n");
      const run = grpo([...command, "-"], { input });
      expect(run.code, `${command[0]}: ${run.stderr}`).toBe(EXIT.invalidInput);
      expect(run.stderr).toContain(message);
    }
    count("ids", "error");
  });

  it("under --skip-invalid the duplicate line is an invalid record; the group goes on without it", () => {
    const input = [
      '{"groupId":"g","id":"a","reward":1}',
      '{"groupId":"g","id":"a","reward":0}',
      '{"groupId":"g","id":"b","reward":0}',
    ].join("\n");
    const run = grpo([...ADVANTAGES, "--skip-invalid", "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    expectEveryLineOnce(run.stdout, input);
    expect(records(run.stdout).map((r) => r.reasonCode ?? "kept")).toEqual(["kept", "invalid", "kept"]);
    expect(records(run.stdout)[1]).toMatchObject({ id: "a", groupId: "g" });
    count("ids", "documented");
  });

  it("the same id in different groups is not a duplicate (ids are unique within their group)", () => {
    const input = ['{"groupId":"g","id":"a","reward":1}', '{"groupId":"h","id":"a","reward":0}'].join("\n");
    const run = grpo([...ADVANTAGES, "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    count("ids", "documented");
  });

  it.each([
    [
      "an integer beyond 2^53 with an exponent",
      "1e20",
      "is an integer beyond 2^53 − 1 written with a fraction or an exponent",
    ],
    [
      "an integer beyond 2^53 with a fraction",
      `${big}.0`,
      "write it as plain digits, which are kept exactly, or as a string",
    ],
    [
      "a fraction with more digits than a float64",
      "0.1000000000000000055511151231257827",
      "has more digits than a float64 holds",
    ],
    ["an integer of 5000 digits", "9".repeat(5000), "an integer of 5000 digits: at most 4096"],
    ["Infinity (1e400)", "1e400", "is beyond the range of a float64 (it reads as Infinity)"],
  ])("a group id that is %s is invalid, not rounded (exit 1)", (_name, token, message) => {
    const run = grpo([...ADVANTAGES, "-"], { input: `{"groupId":${token},"reward":1}\n` });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain("line 1: groupId: ");
    expect(run.stderr).toContain(message);
    count("ids", "error");
  });

  it("a big integer group that comes back is caught by its digest; a neighbour it rounds to is not it", () => {
    const input = [
      `{"groupId":${above},"reward":1}`,
      `{"groupId":${at},"reward":1}`,
      `{"groupId":${above},"reward":0}`,
    ].join("\n");
    const run = grpo([...ADVANTAGES, "-"], { input });
    expect(run.code).toBe(EXIT.invalidInput);
    expect(run.stderr).toContain(
      `line 3: groupId: group ${above} comes back after its group (lines 1) was closed at line 2`,
    );
    count("ids", "error");
  });

  it("an invalid line keeps its ids verbatim in its record", () => {
    const input = `{"groupId":${big},"id":${above},"reward":"high"}\n`;
    const run = grpo([...ADVANTAGES, "--skip-invalid", "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    expect(run.stdout).toContain(`{"line":1,"id":${above},"groupId":${big},"dropped":true,"reasonCode":"invalid"`);
    count("ids", "documented");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("closed pipes: no silent loss", () => {
  it("stdout closed after the first chunk (| head): exit 3 without a message; no summary, no spool left", async () => {
    const { dir, tmp } = workspace();
    const sum = join(dir, "sum.json");
    const child = spawn(
      process.execPath,
      [CLI, "advantages", "--preset", "trlBatch", "--include-rollout", "--summary", sum, "-"],
      { env: { ...process.env, TMPDIR: tmp } },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on("error", () => {});
    child.stdin.end(jsonl(5000));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(EXIT.file);
    expect(stderr).toBe("");
    expectListing(dir, []);
    expectListing(tmp, []);
    count("closed pipes", "error");
  });

  it("-o FIFO whose reader goes away: exit 3; the FIFO stays, nothing left", async () => {
    const { dir, tmp } = workspace();
    const fifo = join(dir, "pipe");
    mkfifo(fifo);
    const child = spawn(process.execPath, [CLI, ...ADVANTAGES, "-q", "-o", fifo, "-"], {
      env: { ...process.env, TMPDIR: tmp },
    });
    child.stdin.on("error", () => {});
    child.stdin.end(jsonl(5000));
    const reader = spawn("head", ["-c", "100", fifo], { stdio: ["ignore", "ignore", "ignore"] });
    await new Promise((resolve) => reader.on("close", resolve));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(EXIT.file);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectListing(dir, ["pipe"]);
    expectListing(tmp, []);
    count("closed pipes", "error");
  });

  it("stderr closed early (2>&1 | head -c 1): the run still ends with its own code", () => {
    const { tmp } = workspace();
    const run = grpo([...ADVANTAGES, "--progress", "-"], {
      input: jsonl(500),
      tmp,
      shell: "exec 2> >(head -c 1 > /dev/null)",
    });
    expect(run.code).toBe(EXIT.ok);
    count("closed pipes", "documented");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("broken lines: each an invalid line with its number", () => {
  it.each([
    ["truncated JSON", '{"groupId":"g0","reward":'],
    ["a bare word", "hello"],
    ["an array", "[1,2]"],
    ["a string", '"rollout"'],
    ["a number", "42"],
    ["null", "null"],
    ["an empty object", "{}"],
    ["a NUL byte", '{"groupId":"g0",\u0000"reward":1}'],
    ["a carriage return inside", '{"groupId":"g0",\r"reward":1}x'],
    ["two objects on one line", '{"groupId":"g0","reward":1}{"groupId":"g0","reward":0}'],
    ["a trailing comma", '{"groupId":"g0","reward":1,}'],
    ["single quotes", "{'groupId':'g0','reward':1}"],
    ["NaN", '{"groupId":"g0","reward":NaN}'],
    ["a reward as a string", '{"groupId":"g0","reward":"1"}'],
    ["a group id as an object", '{"groupId":{"a":1},"reward":1}'],
    ["a group id as a boolean", '{"groupId":true,"reward":1}'],
    ["deep nesting", `{"groupId":"g0","reward":1,"x":${"[".repeat(100_000)}${"]".repeat(100_000)}}x`],
  ])("%s: exit 1 naming line 2; under --skip-invalid, an invalid record", (_name, line) => {
    const input = `${rollout("g0", 0, 1)}\n${line}\n${rollout("g0", 1, 0)}\n`;
    const stop = grpo([...ADVANTAGES, "-"], { input });
    expect(stop.code, stop.stderr).toBe(EXIT.invalidInput);
    expect(stop.stderr).toMatch(/^grpo-roc advantages: line 2: /);
    expectNoTerminalControls(stop.stderr);
    const skip = grpo([...ADVANTAGES, "--skip-invalid", "-"], { input });
    expect(skip.code).toBe(EXIT.ok);
    expectEveryLineOnce(skip.stdout, input);
    expect(records(skip.stdout)[1]).toMatchObject({ line: 2, dropped: true, reasonCode: "invalid" });
    count("broken lines", "error");
  });

  it("deep nesting in a valid rollout is read (no stack overflow), the ids found at the top level", () => {
    const line = `{"x":${"[".repeat(100_000)}${"]".repeat(100_000)},"groupId":18446744073709551615,"reward":1}`;
    const run = grpo([...ADVANTAGES, "-"], { input: `${line}\n` });
    expect(run.code).toBe(EXIT.ok);
    expect(run.stdout).toContain('"groupId":18446744073709551615');
    count("broken lines", "documented");
  });

  it("whitespace-only and CRLF lines are empty lines, counted, not records", () => {
    const input = `\r\n   \t\n${rollout("g0", 0, 1)}\r\n\n`;
    const run = grpo([...ADVANTAGES, "-"], { input });
    expect(run.code).toBe(EXIT.ok);
    expect(records(run.stdout).map((r) => r.line)).toEqual([3]);
    expect(run.stderr).toContain("1 rollouts from 4 lines (3 empty)");
    count("broken lines", "documented");
  });
});
