import { advantages } from "../../advantages/index.js";
import { infraFailureCause } from "../../roc/infra.js";
import { rewardOf } from "../../roc/schema.js";
import type { CommandSpec } from "../args.js";
import {
  advantageOptionsFrom,
  advantageSection,
  groupingSection,
  infraFailuresFrom,
  infraSection,
  ioSection,
} from "../options.js";
import { isPositive } from "../quality.js";
import { AdvantagePlan } from "./advantage-plan.js";
import { describeInfraFailure } from "./roc-records.js";
import { identity, type CommandDefinition, type Member } from "./types.js";

const spec: CommandSpec = {
  name: "advantages",
  summary: "Group-relative advantages of every rollout, with the conventions of verl, TRL, Dr. GRPO or RLOO.",
  description: [
    "No resampling: every rollout is kept and gets the advantage of its reward within its group (the reward, else 1 " +
      "for correct and 0 for wrong). Each record: line, id, groupId, dropped (false), correct, reward, advantage. " +
      "Rollouts the infrastructure failed are the exception: they are left out of their group's statistics and " +
      'written as dropped (dropped: true, reasonCode "infra-failure", reason), unless --infra-failures keep.',
    "Input contract: the rollouts of one group are contiguous lines. A group is computed as soon as a line of " +
      "another group arrives, so memory is bounded by the largest group, not the file (plus, to catch a group id " +
      "that comes back, a 128-bit digest and the line span of each finished group: about 100 bytes a group " +
      "whatever the id's length, none under --repeated-groups separate).",
  ],
  sections: [advantageSection, infraSection, groupingSection, ioSection],
  examples: [
    "grpo-roc advantages rollouts.jsonl",
    "grpo-roc advantages --preset trl -o advantages.jsonl rollouts.jsonl",
  ],
};

export const advantagesCommand: CommandDefinition = {
  spec,
  create(values) {
    const plan = new AdvantagePlan(advantageOptionsFrom(values));
    const dropInfra = infraFailuresFrom(values) === "drop";
    // The group's statistics are those of the rollouts the model is answerable for, as rocPipeline computes them.
    const counted = (members: readonly Member[]) =>
      dropInfra ? members.filter((m) => infraFailureCause(m.rollout) === undefined) : members;
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
        const kept = counted(members);
        const values = kept.length === 0 ? new Float64Array(0) : compute(kept);
        const position = new Map(kept.map((member, k) => [member, k]));
        tally.groups.in++;
        tally.rollouts += members.length;
        tally.kept += kept.length;
        tally.dropped += members.length - kept.length;
        tally.infraFailed += members.filter((m) => infraFailureCause(m.rollout) !== undefined).length;
        return members.map((member) => {
          const k = position.get(member);
          const figures = { correct: isPositive(member.rollout), reward: rewardOf(member.rollout) };
          if (k === undefined) {
            const reason = describeInfraFailure(member.rollout, "advantages", "its group's statistics");
            return {
              dropped: true,
              record: { ...identity(member), dropped: true, reasonCode: "infra-failure", reason, ...figures },
            };
          }
          return { dropped: false, record: { ...identity(member), dropped: false, ...figures, advantage: values[k]! } };
        });
      },
      ...(plan.needsBatch
        ? {
            batch: {
              collect: (members: readonly Member[]) => counted(members).map((m) => rewardOf(m.rollout)),
              setRewards: (rewards: Float64Array) => plan.setBatchRewards(rewards),
            },
          }
        : {}),
    };
  },
};
