import { infraFailureCause } from "../../roc/infra.js";
import { rewardOf } from "../../roc/schema.js";
import type { CommandSpec } from "../args.js";
import { ioSection, penaltyModeSection, penaltyOptionsFrom, penaltySection } from "../options.js";
import { isPositive, scoreRollout } from "../quality.js";
import { identity, type CommandDefinition } from "./types.js";

const spec: CommandSpec = {
  name: "penalties",
  summary:
    "p_err, p_format and p_total of every rollout, with the tool-call outcomes and format figures they come from.",
  description: [
    "Line by line: no grouping, so groups may be in any order. Each record: line, id, groupId, dropped (false), " +
      "correct, reward, infraFailed (an infra_error call or infraFailed: true; nothing is dropped here, the other " +
      'commands drop it), source ("transcript", "structured", or null without quality inputs), toolCalls ' +
      "(infra_error calls left out), failedToolCalls, toolOutcomes { ok, parse_error, execution_error, timeout, " +
      "infra_error }, answers, turns, formatOk, for transcripts unrecognizedResponses and unansweredCalls, and pErr, " +
      "pFormat, pTotal (null without quality inputs).",
  ],
  sections: [penaltyModeSection, penaltySection, ioSection],
  examples: [
    "grpo-roc penalties rollouts.jsonl",
    "grpo-roc penalties --dialect reference --failure-kinds execution_error,timeout - < rollouts.jsonl",
  ],
};

export const penaltiesCommand: CommandDefinition = {
  spec,
  create(values) {
    const options = penaltyOptionsFrom(values);
    return {
      kind: "line",
      processLine(member, tally) {
        const { rollout } = member;
        const scored = scoreRollout(rollout, options);
        tally.rollouts++;
        tally.kept++;
        if (scored === undefined) tally.allRollouts.addWithout();
        else
          tally.allRollouts.add(
            scored.penalties.pErr,
            scored.penalties.pFormat,
            scored.penalties.toolCalls,
            scored.penalties.failedToolCalls,
          );
        const figures =
          scored === undefined
            ? { source: null, pErr: null, pFormat: null, pTotal: null }
            : {
                source: scored.source,
                toolCalls: scored.penalties.toolCalls,
                failedToolCalls: scored.penalties.failedToolCalls,
                toolOutcomes: scored.toolOutcomes,
                answers: scored.answers,
                turns: scored.turns,
                formatOk: scored.formatOk,
                ...(scored.source === "transcript"
                  ? { unrecognizedResponses: scored.unrecognizedResponses, unansweredCalls: scored.unansweredCalls }
                  : {}),
                pErr: scored.penalties.pErr,
                pFormat: scored.penalties.pFormat,
                pTotal: scored.penalties.pTotal,
              };
        return {
          dropped: false,
          record: {
            ...identity(member),
            dropped: false,
            correct: isPositive(rollout),
            reward: rewardOf(rollout),
            infraFailed: infraFailureCause(rollout) !== undefined,
            ...figures,
          },
        };
      },
    };
  },
};
