#!/usr/bin/python3
"""Execute the TypeScript notebooks headlessly and fail on any error.

    /usr/bin/python3 scripts/run-notebooks.py [PATH ...] [--cell-timeout S] [--notebook-timeout S] [--out DIR]
        [--startup-timeout S] [--kernel-starts N]

PATH: notebooks or folders of notebooks (default: examples/notebooks). Needs Debian's Jupyter client packages
(python3-nbclient python3-nbformat python3-jupyter-client python3-ipykernel), `npm ci` (tslab is a devDependency)
and `npm run build` (the notebooks import the built package by name, through the "grpo-roc": "file:." devDependency).

The kernel is registered project-locally: the runner writes out/jupyter/kernels/tslab/kernel.json, pointing at
node_modules/tslab, and sets JUPYTER_PATH to out/jupyter for the kernels it starts. Nothing global is installed.

A notebook fails when
  - a cell errors. tslab's own message is only "<Error>:"; the details are in the cell's stderr, printed here;
  - a cell's stderr looks like an error although the cell succeeded: a TypeScript diagnostic
    ("3:7 - Type 'string' is not assignable ..."), a stack trace, an "...Error:" line, or tslab's
    "UncaughtException:" / "UnhandledPromiseRejection:" lines;
  - an error surfaces asynchronously, outside any awaited code: tslab swallows a throw inside a timer or a promise
    rejection nobody awaited (the cell has already succeeded, and nothing may be printed). Before the first cell
    the runner hooks process "uncaughtException" and "unhandledRejection" in the kernel, recording each error with
    its time; after the last cell it lets pending callbacks run (--settle-ms) and fails on any recorded error,
    naming the cell that was running when it surfaced, or the last one that had finished. When a cell fails, the
    errors recorded before it are printed too (an earlier swallowed error is often the real cause);
  - a cell or the whole notebook runs past its timeout, or the kernel dies.
A kernel that never answers after its start is replaced by a new one, up to --kernel-starts times; the failure to
answer is printed either way. Nothing is retried once the kernel has answered.
So notebooks should await every promise at top level (tslab supports top-level await): then an error belongs to
the cell that caused it. The runner's two hidden cells are never written into the notebooks.

Executed copies (with outputs) are written to out/notebooks/ for inspection. Exit status: 0 all passed,
1 a notebook failed, 2 setup problem (no notebooks, tslab not installed, package not built), 3 Jupyter's Python
packages missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOKS = ROOT / "examples" / "notebooks"
KERNEL_NAME = "tslab"
MARKER = "__grpo_roc_notebook_runner__"

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
except ImportError as error:  # depends on the machine
    print(
        f"run-notebooks: Jupyter's Python packages are missing ({error}).\n"
        "  On Debian: apt-get install -y --no-install-recommends python3-nbclient python3-nbformat "
        "python3-jupyter-client python3-ipykernel\n"
        "  and run this script with Debian's /usr/bin/python3.",
        file=sys.stderr,
    )
    sys.exit(3)


# The runner's hidden cells. They are TypeScript (tslab compiles every cell) wrapped in a block, so that they
# declare nothing in the notebook's scope.
PROLOGUE = f"""{{
  const state = {{ errors: [] as {{ kind: string; message: string; at: number }}[] }};
  (globalThis as any)["{MARKER}"] = state;
  const record = (kind: string) => (error: unknown) => {{
    const message = error instanceof Error ? error.stack ?? `${{error.name}}: ${{error.message}}` : String(error);
    state.errors.push({{ kind, message, at: Date.now() }});
  }};
  process.on("uncaughtException", record("uncaught exception (thrown outside any awaited code, e.g. in a timer)"));
  process.on("unhandledRejection", record("unhandled promise rejection (a promise nobody awaited)"));
}}"""


def collect_cell(settle_ms: int) -> str:
    return f"""await new Promise((resolve) => setTimeout(resolve, {settle_ms}));
{{
  const state = (globalThis as any)["{MARKER}"];
  console.log("{MARKER}" + JSON.stringify(state === undefined ? null : state.errors.splice(0)));
}}"""


# stderr text that means something went wrong, even when the cell itself reported success.
ERROR_PATTERNS = [
    (re.compile(r"^\d+:\d+ - ", re.M), "a TypeScript diagnostic"),
    (re.compile(r"^(UncaughtException|UnhandledPromiseRejection):", re.M), "an asynchronous error tslab caught"),
    (re.compile(r"^\s+at .*(evalmachine|node:internal|\.[cm]?js:\d+:\d+|\.ts:\d+:\d+)", re.M), "a stack trace"),
    (re.compile(r"^(Uncaught )?[A-Za-z]*(Error|Exception)\b:", re.M), "an error message"),
]


class NotebookFailure(Exception):
    def __init__(self, summary: str, cell_index: int | None = None, source: str | None = None, details: str = ""):
        super().__init__(summary)
        self.summary = summary
        self.cell_index = cell_index
        self.source = source
        self.details = details


def stream_text(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == name)


def error_outputs(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            traceback = "\n".join(o.get("traceback", []))
            parts.append(f"{o.get('ename', '')}: {o.get('evalue', '')}" + (f"\n{traceback}" if traceback.strip() else ""))
    return "\n".join(parts)


def error_looking(text: str) -> str | None:
    for pattern, what in ERROR_PATTERNS:
        if pattern.search(text):
            return what
    return None


def numbered(source: str) -> str:
    lines = source.splitlines() or [""]
    width = len(str(len(lines)))
    return "\n".join(f"  {i + 1:>{width}} | {line}" for i, line in enumerate(lines))


def write_kernel_spec(jupyter_dir: Path) -> None:
    tslab = ROOT / "node_modules" / "tslab" / "bin" / "tslab"
    node = shutil.which("node")
    if not tslab.exists():
        raise SystemExit(f"run-notebooks: {tslab.relative_to(ROOT)} not found: run `npm ci` (tslab is a devDependency)")
    if node is None:
        raise SystemExit("run-notebooks: `node` is not on PATH")
    kernel_dir = jupyter_dir / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [node, str(tslab), "kernel", "--config-path", "{connection_file}"],
        "display_name": "TypeScript",
        "language": "typescript",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")


class Runner:
    """Runs one notebook: its code cells in order, between the runner's hidden prologue and collecting cell."""

    def __init__(self, path: Path, args: argparse.Namespace):
        self.path = path
        self.args = args
        self.nb = nbformat.read(path, as_version=4)
        kernel = self.nb.metadata.get("kernelspec", {}).get("name")
        if kernel != KERNEL_NAME:
            raise NotebookFailure(f"metadata.kernelspec.name is {kernel!r}, expected {KERNEL_NAME!r} (a tslab notebook)")
        self.client = NotebookClient(
            self.nb,
            timeout=args.cell_timeout,
            startup_timeout=args.startup_timeout,
            kernel_name=KERNEL_NAME,
            allow_errors=False,
            force_raise_errors=True,  # a "raises-exception" tag must not hide an error here
            resources={"metadata": {"path": str(path.parent)}},
        )
        # (cell index, wall-clock start, end) of every code cell run, to place asynchronous errors.
        self.windows: list[tuple[int, float, float]] = []
        self.code_cells = 0
        # Set once the kernel answers: a failure before that is the kernel's start, which the caller may retry.
        self.kernel_ready = False

    def log(self, message: str) -> None:
        if self.args.verbose:
            print(f"     {message}", flush=True)

    def hidden(self, source: str):
        cell = nbformat.v4.new_code_cell(source)
        # nbclient stores the executed cell at nb.cells[index]: give it a slot of its own, then take it out again.
        self.nb.cells.append(cell)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
        except CellExecutionError as error:
            raise NotebookFailure("the runner's own hidden cell failed", None, source, f"{stream_text(cell, 'stderr')}{error}")
        finally:
            self.nb.cells.pop()
        return cell

    def async_errors(self, settle_ms: int) -> list[dict]:
        cell = self.hidden(collect_cell(settle_ms))
        stdout = stream_text(cell, "stdout")
        match = re.search(re.escape(MARKER) + r"(.*)", stdout)
        if match is None:
            raise NotebookFailure("the runner's collecting cell printed nothing", None, None, stdout + stream_text(cell, "stderr"))
        errors = json.loads(match.group(1))
        if errors is None:
            raise NotebookFailure("the runner's error hooks are gone: did the kernel restart?")
        stderr = stream_text(cell, "stderr")
        if error_looking(stderr):  # tslab's own handler printed something while this cell ran
            errors.append({"kind": "stderr while the runner waited", "message": stderr, "at": time.time() * 1000})
        return errors

    def where(self, at_ms: float) -> tuple[int | None, str]:
        """The cell during which (or after which) an asynchronous error surfaced. Where it started is not known:
        there, or in an earlier cell (a rejection is reported, and a timer fires, when the event loop gets to it)."""
        at = at_ms / 1000
        last_finished = None
        for index, start, end in self.windows:
            if start <= at <= end:
                return index, f"surfaced while cell {index} ran"
            if end <= at:
                last_finished = index
        if last_finished is None:
            return None, "surfaced before the first cell"
        return last_finished, f"surfaced after cell {last_finished} had finished"

    def describe(self, errors: list[dict]) -> str:
        return "\n".join(f"[{self.where(e['at'])[1]}] {e['kind']}:\n{e['message']}" for e in errors)

    def run(self) -> None:
        started = time.monotonic()
        deadline = started + self.args.notebook_timeout
        with self.client.setup_kernel():
            self.kernel_ready = True
            self.log(f"kernel started: {time.monotonic() - started:.2f} s")
            self.hidden(PROLOGUE)
            for index, cell in enumerate(list(self.nb.cells)):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if time.monotonic() > deadline:
                    raise NotebookFailure(f"the notebook ran past its {self.args.notebook_timeout} s timeout", index, cell.source)
                self.run_cell(index, cell)
            errors = self.async_errors(self.args.settle_ms)
            if errors:
                index, _ = self.where(errors[0]["at"])
                source = self.nb.cells[index].source if index is not None else None
                raise NotebookFailure(
                    f"{len(errors)} asynchronous error(s) that no cell awaited, so tslab reported no failure "
                    "(shown: the cell where the first one surfaced; it may have started in an earlier cell)",
                    index,
                    source,
                    self.describe(errors),
                )

    def run_cell(self, index: int, cell) -> None:
        self.code_cells += 1
        t0, wall0 = time.monotonic(), time.time()
        try:
            self.client.execute_cell(cell, index)
        except CellExecutionError as error:
            message = str(error).strip()
            # nbclient's message repeats the source between rulers; keep what follows.
            tail = message.split("------------------")[-1].strip()
            if tail == "<Error>:":
                tail += "   (tslab's whole message: the details are in the cell's stderr above)"
            raise self.failure("a cell raised an error", index, cell, f"--- error ---\n{tail}", wall0)
        except CellTimeoutError:
            raise self.failure(f"a cell ran past its {self.args.cell_timeout} s timeout", index, cell, "", wall0)
        except DeadKernelError as error:
            raise NotebookFailure(f"the kernel died ({error})", index, cell.source, stream_text(cell, "stderr"))
        finally:
            self.windows.append((index, wall0, time.time()))
        self.log(f"cell {index}: {time.monotonic() - t0:.2f} s")
        what = error_looking(stream_text(cell, "stderr"))
        if what is not None or error_outputs(cell):
            raise self.failure(f"the cell succeeded, but its output contains {what or 'an error'}", index, cell, error_outputs(cell), wall0)

    def failure(self, summary: str, index: int, cell, extra: str, wall0: float) -> NotebookFailure:
        stderr = stream_text(cell, "stderr")
        details = "--- stderr ---\n" + (stderr if stderr.strip() else "(the cell wrote nothing to stderr)\n")
        if extra:
            details += extra.rstrip() + "\n"
        # After a failed cell tslab aborts every request for 200 ms (its execQueue.reset(200)): wait that out.
        time.sleep(0.3)
        try:
            earlier = self.async_errors(0)
        except Exception:  # the kernel may be gone; the cell's own error is what matters
            earlier = []
        if earlier:
            details += f"--- {len(earlier)} asynchronous error(s) recorded up to this cell (possibly the real cause) ---\n"
            details += self.describe(earlier)
        return NotebookFailure(summary, index, cell.source, details)


def collect(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths or [str(DEFAULT_NOTEBOOKS)]:
        p = Path(raw)
        if not p.is_absolute():
            p = (Path.cwd() / p).resolve()
        if p.is_dir():
            found.extend(sorted(q for q in p.glob("*.ipynb") if not q.name.startswith(".")))
        elif p.suffix == ".ipynb" and p.exists():
            found.append(p)
        else:
            raise SystemExit(f"run-notebooks: {raw} is neither a notebook nor a folder")
    return found


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run_with_kernel_retries(path: Path, args: argparse.Namespace) -> Runner:
    """Runs one notebook, starting a fresh kernel again when one never answered. Seen under load in CI: tslab's
    zeromq sockets failed to bind ("Socket is blocked by a bind or unbind operation") and the kernel stayed silent
    until the start-up timeout. Only the start is retried: once the kernel has answered, any failure is final."""
    for attempt in range(1, args.kernel_starts + 1):
        runner = Runner(path, args)
        try:
            runner.run()
            return runner
        except Exception as error:
            if runner.kernel_ready or attempt == args.kernel_starts:
                raise
            print(f"     kernel start {attempt} of {args.kernel_starts} failed ({type(error).__name__}: {error}); starting a new one", flush=True)
    raise AssertionError("unreachable: the last attempt returns or raises")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="notebooks or folders (default: examples/notebooks)")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell (default 60)")
    parser.add_argument("--notebook-timeout", type=int, default=180, help="seconds per notebook, checked between cells (default 180)")
    parser.add_argument("--settle-ms", type=int, default=200, help="after the last cell, wait this long for late asynchronous errors (default 200)")
    parser.add_argument("--out", default=str(ROOT / "out" / "notebooks"), help="folder for the executed copies ('' for none)")
    parser.add_argument("--kernel-starts", type=int, default=3, help="tries to start a kernel that answers, per notebook (default 3)")
    parser.add_argument("--startup-timeout", type=int, default=60, help="seconds a kernel has to answer once started (default 60)")
    parser.add_argument("--verbose", action="store_true", help="print the kernel's start-up time and each cell's")
    args = parser.parse_args()
    for flag in ("kernel_starts", "startup_timeout", "cell_timeout", "notebook_timeout"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")

    notebooks = collect(args.paths)
    if not notebooks:
        print("run-notebooks: no notebooks found", file=sys.stderr)
        return 2
    for required in ("dist/index.cjs", "dist/tfjs/index.cjs"):
        if not (ROOT / required).exists():
            print(f"run-notebooks: {required} is missing: run `npm run build` first (the notebooks import the built package)", file=sys.stderr)
            return 2
    if not (ROOT / "node_modules" / "grpo-roc").exists():
        print('run-notebooks: node_modules/grpo-roc is missing: run `npm ci` (the "grpo-roc": "file:." devDependency)', file=sys.stderr)
        return 2

    jupyter_dir = ROOT / "out" / "jupyter"
    write_kernel_spec(jupyter_dir)
    others = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(jupyter_dir), *others])
    out_dir = Path(args.out) if args.out else None

    failures = 0
    started = time.monotonic()
    for path in notebooks:
        t0 = time.monotonic()
        runner = None
        try:
            runner = run_with_kernel_retries(path, args)
        except NotebookFailure as failure:
            failures += 1
            print(f"FAIL {shown(path)} ({time.monotonic() - t0:.1f} s): {failure.summary}", flush=True)
            if failure.cell_index is not None:
                print(f"--- cell {failure.cell_index} (its index in the notebook's cells, from 0) ---")
            if failure.source is not None:
                print(numbered(failure.source))
            if failure.details.strip():
                print(failure.details.rstrip())
            print(flush=True)
            continue
        except Exception as error:  # a kernel that does not start, a notebook that does not parse, ...
            failures += 1
            print(f"FAIL {shown(path)} ({time.monotonic() - t0:.1f} s): {type(error).__name__}: {error}\n", flush=True)
            continue
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(runner.nb, out_dir / path.name)
        print(f"ok   {shown(path)} ({runner.code_cells} code cells, {time.monotonic() - t0:.1f} s)", flush=True)
    print(f"notebooks: {len(notebooks) - failures} passed, {failures} failed ({time.monotonic() - started:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
