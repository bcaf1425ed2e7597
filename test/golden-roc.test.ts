import { describe, expect, it } from "vitest";
import {
  paperCounts,
  parseTranscript,
  penalties,
  referenceCounts,
  resampleOnCorrect,
  rocPresets,
} from "../src/index.js";
import { loadGolden } from "./helpers/golden.js";

interface PenaltyMeta {
  n_calls: number;
  kinds: ("ok" | "falsepos" | "error" | "timeout" | "parse")[];
  n_answers: number;
  balanced: boolean;
  first_turn_prefix: boolean;
}

interface RstarGolden {
  penalty_case: {
    inputs: { response_text: string[] };
    meta: PenaltyMeta[];
    outputs: { p_err: number[]; p_format: number[]; p_total: number[] };
  };
  selection_cases: {
    id: string;
    inputs: { rewards: number[]; response_text: string[] };
    config: {
      roc_error_ratio: boolean;
      roc_answer_format: boolean;
      min_zero_reward_trace_num: number;
      min_non_zero_reward_trace_num: number;
      down_sample_to_n: number;
    };
    outputs: { kept_indices: number[]; n_kept_pos: number; n_kept_neg: number };
  }[];
}

const golden = loadGolden<RstarGolden>("rstar_roc.json");
const penaltyCases = golden.penalty_case.inputs.response_text.map((text, i) => ({
  text,
  meta: golden.penalty_case.meta[i]!,
  pErr: golden.penalty_case.outputs.p_err[i]!,
  pFormat: golden.penalty_case.outputs.p_format[i]!,
  pTotal: golden.penalty_case.outputs.p_total[i]!,
}));

describe("reference dialect reproduces rStar2-Agent's penalties bit for bit (penalty_case)", () => {
  it.each(penaltyCases.map((c, i) => [i, c] as const))("transcript %i", (_i, c) => {
    const p = penalties(parseTranscript(c.text, "reference"));
    expect(p.pErr).toBe(c.pErr);
    expect(p.pFormat).toBe(c.pFormat);
    expect(p.pTotal).toBe(c.pTotal);
  });
});

describe("strict dialect classifies the three failure modes (penalty_case meta)", () => {
  it.each(penaltyCases.map((c, i) => [i, c] as const))("transcript %i", (_i, c) => {
    const parsed = parseTranscript(c.text, "strict");
    const metaCount = (...kinds: PenaltyMeta["kinds"][number][]) =>
      c.meta.kinds.filter((k) => kinds.includes(k)).length;
    expect(parsed.toolOutcomes.ok).toBe(metaCount("ok", "falsepos"));
    expect(parsed.toolOutcomes.timeout).toBe(metaCount("timeout"));
    // The generator's "error" kind includes "Error when executing tool: unknown tool", which the spec counts as a
    // call that could not be parsed; the two non-timeout failure kinds are checked together, and apart below.
    expect(parsed.toolOutcomes.execution_error + parsed.toolOutcomes.parse_error).toBe(metaCount("error", "parse"));
    expect(parsed.toolOutcomes.parse_error).toBeGreaterThanOrEqual(metaCount("parse"));
    expect(parsed.unrecognizedResponses).toBe(0);
    if (c.meta.n_answers > 0) expect(parsed.formatOk).toBe(c.meta.balanced);
    if (c.meta.balanced) expect(parsed.answers).toBe(c.meta.n_answers);
    // One assistant turn per tool call, then the turn that answers; the first turn counts whether or not
    // the transcript carries its header.
    expect(parsed.turns).toBe(c.meta.n_calls + 1);
  });

  it("tells the sandbox's verdicts apart", () => {
    const outcomeOf = (response: string) => {
      const counts = parseTranscript(
        `<tool_call>{}</tool_call><tool_response>${response}</tool_response>`,
      ).toolOutcomes;
      return Object.entries(counts).find(([, n]) => n === 1)?.[0];
    };
    expect(outcomeOf("Tool call success\nstdout: error bars drawn")).toBe("ok");
    expect(outcomeOf("Tool call failure\nreason: worker_timeout\nstdout: Suicide from timeout.")).toBe("timeout");
    expect(outcomeOf("Tool call failure\nreason: runtime\nstderr: NameError")).toBe("execution_error");
    expect(outcomeOf("Failed to decode tool call: Expecting ',' delimiter")).toBe("parse_error");
    expect(outcomeOf("Error when executing tool: unknown tool")).toBe("parse_error");
  });

  it("differs from the reference exactly where the spec says the heuristic is wrong", () => {
    const falsePositive = penaltyCases.find(
      (c) => c.meta.kinds.includes("falsepos") && !c.meta.kinds.some((k) => k !== "ok" && k !== "falsepos"),
    );
    const timeoutOnly = penaltyCases.find(
      (c) => c.meta.kinds.includes("timeout") && c.meta.kinds.every((k) => k === "ok" || k === "timeout"),
    );
    expect(falsePositive, "a transcript whose only 'error' is printed by a successful run").toBeDefined();
    expect(timeoutOnly, "a transcript whose only failures are timeouts").toBeDefined();
    expect(penalties(parseTranscript(falsePositive!.text, "reference")).pErr).toBeGreaterThan(0);
    expect(penalties(parseTranscript(falsePositive!.text, "strict")).pErr).toBe(0);
    expect(penalties(parseTranscript(timeoutOnly!.text, "reference")).pErr).toBe(0);
    expect(penalties(parseTranscript(timeoutOnly!.text, "strict")).pErr).toBeGreaterThan(0);
  });
});

describe("reference mode selects exactly what rStar2-Agent selects (selection_cases)", () => {
  it("has the cases", () => expect(golden.selection_cases.length).toBeGreaterThanOrEqual(17));

  it.each(golden.selection_cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const rollouts = c.inputs.rewards.map((reward, i) => ({
      groupId: "uid",
      reward,
      transcript: c.inputs.response_text[i]!,
    }));
    const result = resampleOnCorrect(rollouts, {
      ...rocPresets.reference,
      // roc.py itself does not filter equal-reward groups (verl does that before it); compare the function alone.
      filterEqualRewards: false,
      keepPerGroup: c.config.down_sample_to_n,
      minNegatives: c.config.min_zero_reward_trace_num,
      minPositives: c.config.min_non_zero_reward_trace_num,
      penaltyWeights: { error: c.config.roc_error_ratio ? 1 : 0, format: c.config.roc_answer_format ? 1 : 0 },
    });
    expect(Array.from(result.kept)).toEqual(c.outputs.kept_indices);
    expect(result.groups[0]!.keptPositives).toBe(c.outputs.n_kept_pos);
    expect(result.groups[0]!.keptNegatives).toBe(c.outputs.n_kept_neg);
  });
});

describe("the spec's worked counts for N = 32 → G = 16", () => {
  it.each([
    [2, { positives: 1, negatives: 15 }, { positives: 2, negatives: 14 }],
    [9, { positives: 5, negatives: 11 }, { positives: 4, negatives: 12 }],
    [31, { positives: 16, negatives: 0 }, { positives: 15, negatives: 1 }],
  ])("%i correct of 32", (correct, paper, reference) => {
    const n = { positives: correct, negatives: 32 - correct };
    expect(paperCounts(n, 16)).toEqual(paper);
    expect(referenceCounts(n, 16, { minNegatives: 2, minPositives: 2 })).toEqual(reference);
  });
});
