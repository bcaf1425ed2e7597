/**
 * The peers' configurations as their users write them, translated into grpo-roc's options: TRL's GRPOConfig
 * (fromTrlConfig) and verl's actor and algorithm sections (fromVerlConfig).
 */
export { fromTrlConfig, TRL_UNUSED_KEYS, trlConfigSchema } from "./trl.js";
export type { TrlConfig, TrlConfigFields, TrlTranslation, TrlUnusedFields, TrlUnusedKey } from "./trl.js";
export {
  fromVerlConfig,
  VERL_ACTOR_UNUSED_KEYS,
  VERL_ALGORITHM_UNUSED_KEYS,
  verlConfigSchema,
  verlTranslationOptionsSchema,
} from "./verl.js";
export type {
  VerlAdvantageEstimator,
  VerlConfig,
  VerlKlController,
  VerlKlInReward,
  VerlTranslation,
  VerlTranslationOptions,
} from "./verl.js";
