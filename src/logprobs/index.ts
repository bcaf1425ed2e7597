export { tokenEntropy, tokenEntropyBackward, tokenLogProbs, tokenLogProbsBackward } from "./token-logprobs.js";
export type {
  Bfloat16Logits,
  LogitsInput,
  TokenEntropy,
  TokenEntropyBackwardOptions,
  TokenEntropyOptions,
  TokenLogProbs,
  TokenLogProbsBackwardOptions,
  TokenLogProbsOptions,
} from "./token-logprobs.js";
export { bfloat16ToFloat32, float32ToBfloat16, roundToBfloat16InPlace, toBfloat16Bits } from "./bfloat16.js";
