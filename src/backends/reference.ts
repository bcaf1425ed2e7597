import { tokenLogProbs, tokenLogProbsBackward } from "../logprobs/index.js";
import { policyLossFromLogits } from "../logits-loss.js";
import { policyLoss } from "../loss/index.js";
import type { Backend } from "./contract.js";

/** The plain-TypeScript kernels, float64, every other backend's yardstick. */
export const referenceBackend: Backend = {
  name: "reference",
  probe: async () => ({
    name: "reference",
    available: true,
    reason: "plain TypeScript on the CPU, float64",
    dtypes: ["float64"],
    maxBindingBytes: Infinity,
  }),
  policyLoss: async (inputs, options) => policyLoss(inputs, options),
  tokenLogProbs: async (logits, tokens, options) => tokenLogProbs(logits, tokens, options),
  tokenLogProbsBackward: async (logits, tokens, options) => tokenLogProbsBackward(logits, tokens, options),
  policyLossFromLogits: async (inputs, options) => policyLossFromLogits(inputs, options),
};
