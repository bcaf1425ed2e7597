import { resampleValidated } from "../../roc/resample.js";
import type { CommandSpec } from "../args.js";
import { groupingSection, infraSection, ioSection, penaltySection, rocOptionsFrom, rocSection } from "../options.js";
import { rocRecords } from "./roc-records.js";
import type { CommandDefinition } from "./types.js";

const spec: CommandSpec = {
  name: "resample",
  summary:
    "Resample-on-Correct per group: keep G rollouts of each, every kind of failure but only the cleanest successes.",
  description: [
    "Every rollout is in the output: kept (dropped: false), or dropped (dropped: true) with reasonCode " +
      '(infra-failure, equal-rewards, undersized, not-selected) and a reason, e.g. "roc: downsampled positive, ' +
      'penalty 0.35 (drew 5 of 9, weighted by 1/penalty)" or "roc: not drawn among negatives (drew 11 of 23)". Each record: ' +
      "line, id, groupId, " +
      "dropped, [reasonCode, reason], correct, reward, pErr, pFormat, pTotal (null where not computed). " +
      "--kept-only writes the kept ones only.",
    "Input contract: the rollouts of one group are contiguous lines (a trainer writes them that way). A group is " +
      "resampled as soon as a line of another group arrives, so memory is bounded by the largest group, not the file " +
      "(plus about 100 bytes a finished group, a digest of its id, to catch an id that comes back; none under " +
      "--repeated-groups separate). The result of each group is the library's resampleOnCorrect on that group, " +
      "which is what it gives for the group inside the whole input (paper-mode draws are seeded per group).",
  ],
  sections: [rocSection, infraSection, penaltySection, groupingSection, ioSection],
  examples: [
    "grpo-roc resample --keep 16 --seed 42 rollouts.jsonl",
    "grpo-roc resample --keep 16 --mode reference --kept-only -o kept.jsonl rollouts.jsonl",
  ],
};

export const resampleCommand: CommandDefinition = {
  spec,
  create(values) {
    const options = rocOptionsFrom(values);
    return {
      kind: "group",
      processGroup(members, tally) {
        // Each line was checked with rolloutSchema as it was read, and rocOptionsFrom resolved the options.
        const scored = resampleValidated(
          members.map((m) => m.rollout),
          options,
        );
        return rocRecords(members, scored, options, tally);
      },
    };
  },
};
