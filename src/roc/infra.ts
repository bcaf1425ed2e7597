import { parseOrThrow } from "../errors.js";
import { type Rollout, rolloutSchema } from "./schema.js";

/**
 * Whether the infrastructure failed a rollout: it says so itself (`infraFailed: true`), or one of its tool calls
 * ended "infra_error". Such a rollout says nothing about the policy; RoC drops it by default (`infraFailures`), and
 * this is the test to apply before computing `advantages` over rollouts of your own. A transcript never yields
 * "infra_error" (rStar2-Agent's sandbox verdicts have no wording for it): mark such a rollout `infraFailed: true`.
 *
 * @example isInfraFailed({ groupId: "q", reward: 0, toolCalls: [{ outcome: "infra_error" }], answers: 0, turns: 1 })
 *   // => true
 * @throws ValidationError at `rollout.<field>` for a rollout that rolloutSchema refuses.
 */
export function isInfraFailed(rollout: Rollout): boolean {
  parseOrThrow(rolloutSchema, rollout, "rollout");
  return infraFailureCause(rollout) !== undefined;
}

/**
 * What made a validated rollout infrastructure-failed, in the rollout's own terms (`infraFailed: true`, or the first
 * `toolCalls[k].outcome` that is "infra_error"); undefined when nothing did.
 */
export function infraFailureCause(rollout: Rollout): string | undefined {
  if (rollout.infraFailed === true) return "infraFailed: true";
  const k = rollout.toolCalls?.findIndex((call) => call.outcome === "infra_error") ?? -1;
  return k < 0 ? undefined : `toolCalls[${k}].outcome is infra_error`;
}
