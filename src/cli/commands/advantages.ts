import { advantages } from "../../advantages/index.js";
import { rewardOf } from "../../roc/schema.js";
import type { CommandSpec } from "../args.js";
import { advantageOptionsFrom, advantageSection, groupingSection, ioSection } from "../options.js";
import { isPositive } from "../quality.js";
import { AdvantagePlan } from "./advantage-plan.js";
import { identity, type CommandDefinition, type Member } from "./types.js";

const spec: CommandSpec = {
  name: "advantages",
  summary: "Group-relative advantages of every rollout, with the conventions of verl, TRL, Dr. GRPO or RLOO.",
  description: [
    "No resampling: every rollout is kept and gets the advantage of its reward within its group (the reward, else 1 " +
      "for correct and 0 for wrong). Each record: line, id, groupId, dropped (false), correct, reward, advantage.",
    "Input contract: the rollouts of one group are contiguous lines. A group is computed as soon as a line of " +
      "another group arrives, so memory is bounded by the largest group, not the file (plus, to catch a group id " +
      "that comes back, a 128-bit digest and the line span of each finished group: about 100 bytes a group " +
      "whatever the id's length, none under --repeated-groups separate).",
  ],
  sections: [advantageSection, groupingSection, ioSection],
  examples: [
    "grpo-roc advantages rollouts.jsonl",
    "grpo-roc advantages --preset trl -o advantages.jsonl rollouts.jsonl",
  ],
};

export const advantagesCommand: CommandDefinition = {
  spec,
  create(values) {
    const plan = new AdvantagePlan(advantageOptionsFrom(values));
    const compute = (members: readonly Member[]) =>
      plan.finish(
        advantages(
          members.map((m) => rewardOf(m.rollout)),
          members.map((m) => m.rollout.groupId),
          plan.library,
        ),
      );
    return {
      kind: "group",
      processGroup(members, tally) {
        const values = compute(members);
        tally.groups.in++;
        tally.rollouts += members.length;
        tally.kept += members.length;
        return members.map((member, k) => ({
          dropped: false,
          record: {
            ...identity(member),
            dropped: false,
            correct: isPositive(member.rollout),
            reward: rewardOf(member.rollout),
            advantage: values[k]!,
          },
        }));
      },
      ...(plan.needsBatch
        ? {
            batch: {
              collect: (members: readonly Member[]) => members.map((m) => rewardOf(m.rollout)),
              setRewards: (rewards: Float64Array) => plan.setBatchRewards(rewards),
            },
          }
        : {}),
    };
  },
};
