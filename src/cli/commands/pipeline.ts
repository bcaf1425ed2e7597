import { keptAdvantages } from "../../pipeline.js";
import { resampleValidated } from "../../roc/resample.js";
import { rewardOf } from "../../roc/schema.js";
import type { CommandSpec } from "../args.js";
import {
  advantageOptionsFrom,
  advantageSection,
  groupingSection,
  infraSection,
  ioSection,
  penaltySection,
  rocOptionsFrom,
  rocSection,
} from "../options.js";
import { AdvantagePlan } from "./advantage-plan.js";
import { rocRecords } from "./roc-records.js";
import type { CommandDefinition, Member } from "./types.js";

const spec: CommandSpec = {
  name: "pipeline",
  summary: "One training step's selection: Resample-on-Correct per group, then advantages over the kept rollouts only.",
  description: [
    "The records of resample, with the advantage on each kept one: line, id, groupId, dropped, [reasonCode, reason], " +
      "correct, reward, pErr, pFormat, pTotal, and advantage when kept. --kept-only writes what a trainer trains on.",
    "Input contract: the rollouts of one group are contiguous lines; memory is bounded by the largest group (plus " +
      "about 100 bytes a finished group, a digest of its id, to catch an id that comes back; none under " +
      "--repeated-groups separate). " +
      "Each group gets the library's rocPipeline result for that group, which is what it gives inside the whole " +
      "input.",
  ],
  sections: [rocSection, infraSection, advantageSection, penaltySection, groupingSection, ioSection],
  examples: [
    "grpo-roc pipeline --keep 16 --seed $STEP --kept-only rollouts.jsonl > batch.jsonl",
    "grpo-roc pipeline --keep 16 --mode reference --preset verl --summary step.json -o batch.jsonl rollouts.jsonl",
  ],
};

export const pipelineCommand: CommandDefinition = {
  spec,
  create(values) {
    const roc = rocOptionsFrom(values);
    const plan = new AdvantagePlan(advantageOptionsFrom(values));
    return {
      kind: "group",
      processGroup(members, tally) {
        // rocPipeline's two steps, on lines each checked with rolloutSchema as it was read and options that
        // rocOptionsFrom resolved: checking them again per group was about a third of the command's time.
        const rollouts = members.map((m) => m.rollout);
        const scored = resampleValidated(rollouts, roc);
        const values = plan.finish(keptAdvantages(rollouts, scored.result, plan.library));
        const position = new Map<number, number>(Array.from(scored.result.kept, (index, k) => [index, k]));
        return rocRecords(members, scored, roc, tally, (k) => values[position.get(k)!]!);
      },
      ...(plan.needsBatch
        ? {
            batch: {
              // The batch of the advantages is the kept rollouts: RoC is deterministic, so the first pass sees the
              // same.
              collect: (members: readonly Member[]) =>
                Array.from(
                  resampleValidated(
                    members.map((m) => m.rollout),
                    roc,
                  ).result.kept,
                  (index) => rewardOf(members[index]!.rollout),
                ),
              setRewards: (rewards: Float64Array) => plan.setBatchRewards(rewards),
            },
          }
        : {}),
    };
  },
};
