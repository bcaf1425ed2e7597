export { fromTrlConfig, trlConfigSchema, TRL_UNUSED_KEYS } from "./trl.js";
export type { ResolvedTrlConfig, TrlConfig, TrlTranslation } from "./trl.js";
export { fromVerlConfig, verlConfigSchema, VERL_ACTOR_UNUSED_KEYS, VERL_ALGORITHM_UNUSED_KEYS } from "./verl.js";
export type { ResolvedVerlActor, ResolvedVerlAlgorithm, VerlConfig, VerlTranslation } from "./verl.js";
