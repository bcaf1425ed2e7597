#!/usr/bin/env python3
"""GRPO-RoC in a verl-style training step, where rStar2-Agent puts it: after the rewards, before the old-log-prob
pass and the advantages.

rStar2-Agent's trainer (microsoft/rStar, rstar2_agent/rstar2_agent_ray_trainer.py, `fit`) runs each step as:
generate 2G responses per prompt -> compute rewards (`token_level_scores`) -> down-sample (drop the groups whose
rewards are all equal, then Resample-on-Correct keeps G per group) -> balance the batch -> recompute the old
log-probs -> reference log-probs -> advantages (verl's `compute_advantage`, GRPO over `non_tensor_batch["uid"]`)
-> update the actor. Down-sampling first means the log-prob passes run on the G kept rollouts, not on all 2G.

verl cannot be installed here, so the batch is a plain dict of lists, one entry per rollout, with the names verl's
`DataProto` uses (volcengine/verl: verl/protocol.py, `DataProto.batch` / `non_tensor_batch`; the keys as
verl/trainer/ppo/ray_trainer.py reads them in `compute_advantage` and `compute_response_mask`):

    uid                  non_tensor_batch: the prompt's id, shared by its 2G responses (the GRPO group)
    responses            batch: the response's token ids (here a list of ints per rollout, unpadded)
    response_mask        batch: 1 for a token the policy generated, 0 for a tool's output
    token_level_scores   batch: the reward, on the response's last token (as verl's reward managers write it)
    old_log_probs        batch: added by the old-log-prob pass
    advantages           batch: added by the advantage step, one value per token

plus the structured tool-use record RoC reads, which a real trainer gets from its agent loop: `tool_calls` (each
call's outcome), `answers` and `turns`. Everything is simulated: the policy, the sandbox and the log-probs.

Standard library only, Python 3.9+. Run it from the repository after `npm run build`:

    python3 examples/python/verl_style_step.py --steps 3

It finds `grpo-roc` as trainer.py does (GRPO_ROC_CLI, default `npx --no-install grpo-roc`), and imports the client
from the package's python/ folder.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

# The client ships in the package's python/ folder (node_modules/grpo-roc/python in a project that installed it).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from grpo_roc_client import GrpoRocServer  # noqa: E402

Batch = dict[str, list[Any]]
FAILURES = ("parse_error", "execution_error", "timeout")


def generate(rng: random.Random, step: int, prompts: int, n: int) -> Batch:
    """The rollout phase: n responses per prompt, the n of one prompt next to each other (verl's
    `repeat(interleave=True)`), each with its tokens, its mask and its tool calls."""
    columns = ("uid", "responses", "response_mask", "tool_calls", "answers", "turns", "_solved")
    batch: Batch = {key: [] for key in columns}
    for p in range(prompts):
        difficulty = rng.random()
        for _ in range(n):
            turns = rng.randint(1, 5)
            calls = [
                {"name": "python", "outcome": rng.choice(FAILURES) if rng.random() < 0.3 else "ok"}
                for _ in range(turns - 1)
            ]
            length = rng.randint(8, 24)
            batch["uid"].append(f"step{step}-prompt{p}")
            batch["responses"].append([rng.randrange(32000) for _ in range(length)])
            # Tool outputs are part of the sequence but not the policy's tokens: masked out of the loss.
            batch["response_mask"].append([0 if 3 <= t < 3 + 2 * len(calls) else 1 for t in range(length)])
            batch["tool_calls"].append(calls)
            batch["answers"].append(rng.choices([0, 1, 2], weights=[1, 8, 1])[0])
            batch["turns"].append(turns)
            # The simulation's ground truth: what a real reward function finds out by checking the answer.
            batch["_solved"].append(rng.random() > difficulty)
    return batch


def compute_rewards(batch: Batch) -> None:
    """The reward phase: 1 for a right answer, 0 otherwise, on the last token (`token_level_scores`)."""
    batch["token_level_scores"] = []
    for tokens, answers, solved in zip(batch["responses"], batch["answers"], batch.pop("_solved")):
        reward = 1.0 if answers > 0 and solved else 0.0
        batch["token_level_scores"].append([0.0] * (len(tokens) - 1) + [reward])


def select_rows(batch: Batch, rows: list[int]) -> Batch:
    """verl's `DataProto.select_idxs`: the given rows of every column, in that order."""
    return {key: [column[i] for i in rows] for key, column in batch.items()}


def resample_on_correct(server: GrpoRocServer, batch: Batch, keep: int, step: int) -> tuple[Batch, dict[str, Any]]:
    """rStar2-Agent's `_down_sample_batch`, by grpo-roc: the equal-reward filter and RoC keep G rollouts of each
    group; the advantages of the kept ones come back with them (verl's GRPO: (r - mean) / (std + 1e-6))."""
    rollouts = [
        {
            "id": i,
            "group_id": uid,
            "reward": sum(scores),
            "tool_calls": calls,
            "answers": answers,
            "turns": turns,
        }
        for i, (uid, scores, calls, answers, turns) in enumerate(
            zip(batch["uid"], batch["token_level_scores"], batch["tool_calls"], batch["answers"], batch["turns"])
        )
    ]
    response = server.pipeline(rollouts, keep=keep, seed=step, preset="verl", kept_only=True)
    kept = [record["line"] - 1 for record in response.records]
    selected = select_rows(batch, kept)
    selected["_grpo_roc_advantage"] = [record["advantage"] for record in response.records]
    return selected, response.summary


def compute_old_log_probs(batch: Batch) -> int:
    """The old-log-prob pass (a forward pass of the actor in verl): simulated; returns the tokens it processed."""
    batch["old_log_probs"] = [[-1.0 - (token % 7) / 10 for token in tokens] for tokens in batch["responses"]]
    return sum(len(tokens) for tokens in batch["responses"])


def compute_advantages(batch: Batch) -> None:
    """The advantage step: each rollout's scalar advantage on every token it generated (verl's GRPO estimator
    broadcasts it over `response_mask` the same way)."""
    advantages = batch.pop("_grpo_roc_advantage")
    batch["advantages"] = [[a * mask for mask in masks] for a, masks in zip(advantages, batch["response_mask"])]


def check_against_grpo(batch: Batch) -> float:
    """The advantages equal verl's GRPO over the kept rollouts, group by group: the largest difference."""
    groups: dict[str, list[int]] = {}
    for i, uid in enumerate(batch["uid"]):
        groups.setdefault(uid, []).append(i)
    worst = 0.0
    for rows in groups.values():
        rewards = [sum(batch["token_level_scores"][i]) for i in rows]
        mean, std = statistics.fmean(rewards), statistics.stdev(rewards)
        for i, reward in zip(rows, rewards):
            first_generated = batch["response_mask"][i].index(1)
            worst = max(worst, abs(batch["advantages"][i][first_generated] - (reward - mean) / (std + 1e-6)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4, help="G: 2G responses are generated per prompt, G kept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    with GrpoRocServer() as server:  # one Node process for the whole run
        for step in range(1, args.steps + 1):
            batch = generate(rng, step, args.prompts, 2 * args.group_size)
            compute_rewards(batch)
            generated = len(batch["uid"])
            all_tokens = sum(len(tokens) for tokens in batch["responses"])
            batch, summary = resample_on_correct(server, batch, args.group_size, step)
            if not batch["uid"]:
                print(f"step {step}: every group's rewards were equal; nothing to train on")
                continue
            tokens = compute_old_log_probs(batch)
            compute_advantages(batch)
            worst = check_against_grpo(batch)
            if not worst < 1e-9:
                raise RuntimeError(f"advantages differ from GRPO's by {worst}")
            groups = summary["groups"]
            print(
                f"step {step}: {generated} rollouts -> {len(batch['uid'])} kept from {groups['resampled']} groups "
                f"({groups['droppedEqualRewards']} dropped: equal rewards); "
                f"old-log-prob pass over {tokens} of {all_tokens} tokens; "
                f"advantages = GRPO's (max diff {worst:.1e})"
            )
            ratio = summary["keptPositives"]["toolErrorRatio"], summary["allPositives"]["toolErrorRatio"]
            print(f"  tool-error ratio of correct rollouts: kept {fmt(ratio[0])} vs all {fmt(ratio[1])}")
    print(f"ok: {args.steps} steps")
    return 0


def fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
