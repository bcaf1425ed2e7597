#!/usr/bin/env python3
"""Python peer for bench/roc.bench.ts: rStar2-Agent's reference Resample-on-Correct, written from
docs/spec.md sections 2-3 (reference mode, "Transcript mode") so the bench can set the library
beside the Python the reference trainer runs.

Usage: python3 peer_roc.py INPUT.json. INPUT holds the bench's transcripts, structured rollouts, transcript
rollouts and the run counts; timings and results go to stdout as one JSON object. Standard library only
(Unix-only `resource` for the peak memory).
"""
import json
import platform
import re
import resource
import statistics
import sys
import time

# The reference heuristics: a response is a failure when it mentions "error"; answers and assistant turns are
# counted with non-greedy DOTALL regexes, so blocks never overlap.
TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
CLOSED_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL)
ASSISTANT_TURN = re.compile(r"<\|im_start\|>assistant.*?<\|im_end\|>", re.DOTALL)

NO_TOOL_CALL_P_ERR = 0.5
MIN_NEGATIVES = 2
MIN_POSITIVES = 2
EPSILON = 1e-6  # verl's GRPO: (r - mean) / (unbiased std + 1e-6)


def transcript_penalties(text):
    """(p_err, p_format) of one response transcript, by the reference heuristics."""
    responses = TOOL_RESPONSE.findall(text)
    if responses:
        p_err = sum("error" in body.lower() for body in responses) / len(responses)
    else:
        p_err = NO_TOOL_CALL_P_ERR
    closed = len(CLOSED_ANSWER.findall(text))
    turns = len(ASSISTANT_TURN.findall(text))
    opened, closing = text.count("<answer>"), text.count("</answer>")
    if opened == 0 or closing == 0 or opened != closed or closing != closed or turns == 0:
        p_format = 1.0
    else:
        p_format = min((closed - 1) / turns, 1.0)
    return p_err, p_format


def structured_penalty(rollout):
    """p_total of a rollout given as tool-call outcomes, answers and turns; every non-ok outcome is a failure."""
    calls = rollout["toolCalls"]
    if calls:
        p_err = sum(call["outcome"] != "ok" for call in calls) / len(calls)
    else:
        p_err = NO_TOOL_CALL_P_ERR
    answers = rollout["answers"]
    p_format = 1.0 if answers == 0 else min((answers - 1) / rollout["turns"], 1.0)
    return p_err + p_format


def reference_counts(n_pos, n_neg, keep):
    """(k_pos, k_neg) by Python rounding and the floors of 2; None when the group is kept whole."""
    size = n_pos + n_neg
    k_neg = round(n_neg * keep / size)
    k_pos = round(n_pos * keep / size)
    if k_neg < MIN_NEGATIVES and k_pos < MIN_POSITIVES:
        return None
    if k_neg <= min(MIN_NEGATIVES, n_neg):
        k_neg = min(MIN_NEGATIVES, n_neg)
        k_pos = keep - k_neg
    if k_pos <= min(MIN_POSITIVES, n_pos):
        k_pos = min(MIN_POSITIVES, n_pos)
        k_neg = keep - k_pos
    return k_pos, k_neg


def select_group(rewards, p_total, keep):
    """Indices into the group to keep, ascending: the k_pos cleanest positives and the first k_neg negatives."""
    if len(set(rewards)) == 1:
        return []  # no signal: dropped before RoC
    if len(rewards) < keep:
        return []  # the released code skips undersized groups
    if len(rewards) == keep:
        return list(range(keep))
    positives = [i for i, r in enumerate(rewards) if r > 0]
    negatives = [i for i, r in enumerate(rewards) if r <= 0]
    counts = reference_counts(len(positives), len(negatives), keep)
    if counts is None:
        return list(range(len(rewards)))
    k_pos, k_neg = counts
    cleanest = sorted(positives, key=lambda i: p_total[i])[:k_pos]  # sorted() is stable: ties by index
    return sorted(cleanest + negatives[:k_neg])


def grpo_advantages(rewards):
    # Kept groups always hold both rewards (equal-reward groups are dropped), so len(rewards) >= 2.
    mean = sum(rewards) / len(rewards)
    std = (sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1)) ** 0.5
    return [(r - mean) / (std + EPSILON) for r in rewards]


def roc_reference(rollouts, p_total_of, keep):
    """Kept global indices (ascending) and their advantages, computed over each group's kept rollouts."""
    groups = {}
    for index, rollout in enumerate(rollouts):
        groups.setdefault(rollout["groupId"], []).append(index)
    advantage_of = {}
    for members in groups.values():
        rewards = [rollouts[i]["reward"] for i in members]
        p_total = [p_total_of(i) for i in members]  # every rollout scored, as the library does
        chosen = [members[k] for k in select_group(rewards, p_total, keep)]
        if chosen:
            advantage_of.update(zip(chosen, grpo_advantages([rollouts[i]["reward"] for i in chosen])))
    kept = sorted(advantage_of)
    return kept, [advantage_of[i] for i in kept]


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "runs": runs}


def max_rss_mb():
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    transcripts = data["transcripts"]
    structured = data["structured"]
    transcript_rollouts = data["transcriptRollouts"]
    keep, runs = data["keepPerGroup"], data["runs"]

    def parse_all():
        return [transcript_penalties(text) for text in transcripts]

    def select_structured():
        return roc_reference(structured, lambda i: structured_penalty(structured[i]), keep)

    def roc_transcripts():
        p_total = [sum(transcript_penalties(transcripts[r["transcript"]])) for r in transcript_rollouts]
        return roc_reference(transcript_rollouts, p_total.__getitem__, keep)

    # These result passes are also the warm-up: CPython has no JIT to warm, only caches.
    penalties = parse_all()
    kept, advantages = select_structured()
    kept_transcripts, _ = roc_transcripts()
    timings = {
        "parse_reference": timed(parse_all, runs["parse"]),
        "roc_structured": timed(select_structured, runs["structured"]),
        "roc_transcripts": timed(roc_transcripts, runs["endToEnd"]),
    }
    print(json.dumps({
        "python": platform.python_version(),
        "max_rss_mb": max_rss_mb(),
        "timings": timings,
        "results": {
            "p_err": [p for p, _ in penalties],
            "p_format": [p for _, p in penalties],
            "kept_structured": kept,
            "advantages_structured": advantages,
            "kept_transcripts": kept_transcripts,
        },
    }))


if __name__ == "__main__":
    main(sys.argv[1])
