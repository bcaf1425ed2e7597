#!/usr/bin/env python3
"""A toy GRPO-RoC training loop that calls the `grpo-roc` command line from Python.

Each step it samples 2G rollouts per prompt (simulated: tool calls that succeed or fail, answers, a 0/1 reward),
writes them as JSON Lines, and lets `grpo-roc pipeline` do the selection: Resample-on-Correct keeps G of the 2G
rollouts of each group, then group-relative advantages are computed over the kept ones only. The trainer reads the
result back: every rollout comes back exactly once, kept (with its advantage) or dropped (with a reason).

Standard library only, Python 3.9+. How the CLI is found: the environment variable GRPO_ROC_CLI, a command line
split like a shell would (shlex), defaulting to `npx --no-install grpo-roc` (this repository after `npm run build`,
or any project that installed grpo-roc). For example:

    GRPO_ROC_CLI="node /path/to/grpo-roc/dist/cli.js" python3 trainer.py --steps 5
"""

import argparse
import json
import math
import os
import random
import shlex
import subprocess
import sys
import tempfile
from collections import Counter

DEFAULT_CLI = "npx --no-install grpo-roc"
FAILURES = ("parse_error", "execution_error", "timeout")


class GrpoRocError(RuntimeError):
    """The CLI exited with a non-zero code: 1 invalid input (its stderr names the line and the field), 2 usage
    error, 3 I/O error, 130 interrupted. The message carries the CLI's stderr."""

    def __init__(self, command, returncode, stderr):
        super().__init__(f"{shlex.join(command)} exited with code {returncode}:\n{stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def cli_command():
    return shlex.split(os.environ.get("GRPO_ROC_CLI", DEFAULT_CLI))


class ToyPolicy:
    """Stands in for the model: how often a tool call fails, and how likely a rollout is to be right."""

    def __init__(self):
        self.tool_error_rate = 0.35

    def rollout(self, rng, prompt_id, k, difficulty):
        calls = []
        for _ in range(rng.randint(0, 4)):
            failed = rng.random() < self.tool_error_rate
            calls.append({"name": "python", "outcome": rng.choice(FAILURES) if failed else "ok"})
        answers = rng.choices([0, 1, 2, 3], weights=[5, 80, 10, 5])[0]
        correct = answers > 0 and rng.random() > difficulty
        return {
            "id": f"{prompt_id}/r{k}",
            "groupId": prompt_id,  # the rollouts of one prompt are one group: written as contiguous lines
            "reward": 1.0 if correct else 0.0,
            "toolCalls": calls,
            "answers": answers,  # <answer> blocks in the response: more than one is penalised
            "turns": len(calls) + 1,
        }


def sample_rollouts(policy, rng, step, prompts, group_size):
    """2G rollouts per prompt, group after group (the CLI reads a group as a run of lines with one groupId)."""
    rollouts = []
    for p in range(prompts):
        difficulty = rng.random()
        for k in range(2 * group_size):
            rollouts.append(policy.rollout(rng, f"step{step}/prompt{p}", k, difficulty))
    return rollouts


def select(rollouts, workdir, group_size, seed, mode):
    """Runs `grpo-roc pipeline` on the rollouts and returns its records, one per rollout, in input order."""
    rollouts_path = os.path.join(workdir, "rollouts.jsonl")
    batch_path = os.path.join(workdir, "batch.jsonl")
    with open(rollouts_path, "w", encoding="utf-8") as f:
        for rollout in rollouts:
            f.write(json.dumps(rollout) + "\n")
    command = cli_command() + [
        "pipeline",
        "--keep", str(group_size),  # G rollouts kept per group
        "--seed", str(seed),  # the step: each step draws afresh, a rerun of a step is identical
        "--mode", mode,  # paper (sampled ∝ 1/penalty) or reference (rStar2-Agent's released code)
        "--preset", "verl",  # advantage conventions: (r - mean) / (std + 1e-6), as rStar2-Agent trains
        "--quiet",
        "-o", batch_path,  # written atomically: the file is complete or not there
        rollouts_path,
    ]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as error:
        raise RuntimeError(f"cannot run {command[0]!r}: set GRPO_ROC_CLI to the grpo-roc command") from error
    if done.returncode != 0:
        raise GrpoRocError(command, done.returncode, done.stderr)
    with open(batch_path, encoding="utf-8") as f:
        # One JSON record per line, in the order of the input (iterate instead of building a list for a big step).
        return [json.loads(line) for line in f if line.strip()]


def check_every_rollout_came_back(rollouts, records):
    sent = Counter(r["id"] for r in rollouts)
    got = Counter(r["id"] for r in records)
    if sent != got:
        missing, extra = sent - got, got - sent
        raise RuntimeError(f"rollouts lost or repeated: missing {dict(missing)}, unexpected {dict(extra)}")


def tool_error_ratio(rollouts):
    """Failed tool calls over all tool calls, the figure RoC drives down among correct rollouts."""
    calls = [c for r in rollouts for c in r["toolCalls"]]
    return sum(c["outcome"] != "ok" for c in calls) / len(calls) if calls else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8, help="prompts (groups) per step")
    parser.add_argument("--group-size", type=int, default=4, help="G: 2G rollouts are sampled per prompt, G kept")
    parser.add_argument("--mode", choices=["paper", "reference"], default="paper")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    policy = ToyPolicy()
    with tempfile.TemporaryDirectory(prefix="grpo-roc-") as workdir:
        for step in range(1, args.steps + 1):
            rollouts = sample_rollouts(policy, rng, step, args.prompts, args.group_size)
            records = select(rollouts, workdir, args.group_size, seed=step, mode=args.mode)
            check_every_rollout_came_back(rollouts, records)

            by_id = {r["id"]: r for r in rollouts}
            kept = [rec for rec in records if not rec["dropped"]]
            # Why the others were dropped: equal-rewards (the whole group, no signal), not-selected (RoC), ...
            reasons = Counter(rec["reasonCode"] for rec in records if rec["dropped"])
            # Here a real trainer computes the policy loss: each kept rollout's advantage is given to every token
            # it generated (tool outputs masked out), and the clipped ratio is averaged over all kept tokens.
            # The mean is about 0: advantages are centred within each group.
            mean_advantage = sum(rec["advantage"] for rec in kept) / len(kept) if kept else float("nan")
            kept_correct = [by_id[rec["id"]] for rec in kept if rec["correct"]]
            all_correct = [r for r in rollouts if r["reward"] > 0]

            trained_groups = len({rec["groupId"] for rec in kept})
            dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
            print(
                f"step {step}: {args.prompts} groups ({trained_groups} trained on), {len(rollouts)} rollouts"
                f" -> kept {len(kept)}, dropped {sum(reasons.values())} ({dropped})"
            )
            print(
                f"  mean advantage of kept {round(mean_advantage, 4) + 0.0:+.4f}; tool-error ratio: kept correct "
                f"{tool_error_ratio(kept_correct):.3f} vs all correct {tool_error_ratio(all_correct):.3f}"
            )
            # Toy update: the policy drifts towards the tool use of the correct rollouts it was trained on.
            ratio = tool_error_ratio(kept_correct)
            if not math.isnan(ratio):
                policy.tool_error_rate += 0.5 * (ratio - policy.tool_error_rate)
    print(f"ok: {args.steps} steps, every rollout came back exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
