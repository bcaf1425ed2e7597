export { tokenLogProbs, tokenLogProbsBackward } from "./token-logprobs.js";
export type { LogitsInput, TokenLogProbs, TokenLogProbsBackwardOptions, TokenLogProbsOptions } from "./token-logprobs.js";
