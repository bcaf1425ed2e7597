import * as z from "zod/mini";
import { pure } from "../pure.js";
import { advantageEstimatorNames, advantageOptionsSchema } from "../advantages/index.js";
import { invalid, parseOrThrow } from "../errors.js";
import { rocOptionsSchema } from "../roc/schema.js";

/** What becomes of the informative groups a round brings beyond the batch it completes (see `pushRound`). */
const SURPLUS_RULES = ["carry", "drop"] as const;
/** What `flush` does with the informative groups of a batch it cannot fill. */
const LAST_BATCH_RULES = ["emit", "drop"] as const;

const fraction = /* @__PURE__ */ pure(() => z.number().check(z.minimum(0), z.maximum(1)));

/** The fields of `estimate`: a const of its own, so that the published types keep each field's comment. */
const estimateShape = /* @__PURE__ */ pure(() => ({
  /** The informative fraction assumed before any group is seen (default 0.5: the first request is twice the need). */
  prior: z._default(fraction, 0.5),
  /** How many groups the prior weighs as, beside the groups seen (default 1: it fades after the first few). */
  priorWeight: z._default(z.number().check(z.nonnegative()), 1),
  /**
   * Emitted batches the running fraction looks back over, beside the groups of the batch being filled (default 4):
   * recent enough to follow a fraction that drifts as training goes.
   */
  window: z._default(z.int().check(z.minimum(1)), 4),
  /** The least fraction the estimate divides by (default 0.05: never more than 20 prompts per group needed). */
  minFraction: z._default(z.number().check(z.gt(0), z.maximum(1)), 0.05),
}));

const estimateSchema: z.ZodMiniObject<typeof estimateShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  estimateShape,
);
const ESTIMATE_DEFAULTS = { prior: 0.5, priorWeight: 1, window: 4, minFraction: 0.05 };

/** createRocBatcher's options: a const of its own, so that the published types keep each field's comment. */
const rocBatcherOptionsShape = /* @__PURE__ */ pure(() => ({
  /** Informative groups per batch, an integer ≥ 1: every batch but the last (from `flush`) holds exactly this many. */
  groupsPerBatch: z.int().check(z.minimum(1)),
  /**
   * Resample-on-Correct's options, as `rocPipeline` takes them (see `rocPresets`). In paper mode the seed is the
   * batcher's: group k (0-based, in arrival order) is resampled with the seed `${seed}\u0000${k}`.
   */
  roc: rocOptionsSchema,
  /**
   * The advantages' options, as `rocPipeline` takes them (default verl's GRPO). Advantages are computed per group;
   * with `stdScope: "batch"` (`advantagePresets.trlBatch`) the std is the emitted batch's, computed when it is emitted.
   */
  advantages: z.prefault(advantageOptionsSchema, {}),
  /** "carry" (default): a round's informative groups beyond a full batch begin the next; "drop": DAPO's truncation. */
  surplus: z._default(z.enum(SURPLUS_RULES), "carry"),
  /** At `flush`: "emit" (default) the last, partial batch flagged `partial`, or "drop" its groups (reported). */
  lastBatch: z._default(z.enum(LAST_BATCH_RULES), "emit"),
  /** How `promptsToRequest` is estimated: ⌈needed / max(fraction, minFraction)⌉ over a window of recent batches. */
  estimate: z._default(estimateSchema, ESTIMATE_DEFAULTS),
}));

const rocBatcherOptionsSchema: z.ZodMiniObject<typeof rocBatcherOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(rocBatcherOptionsShape);

/** The options `createRocBatcher` takes: groupsPerBatch and roc (with a seed in paper mode), the rest optional. */
export type RocBatcherOptions = z.input<typeof rocBatcherOptionsSchema>;
/** The options with every default filled in, as the batcher reads them. */
export type ResolvedBatcherOptions = z.output<typeof rocBatcherOptionsSchema>;

/**
 * Checks and fills in the batcher's options. The estimator is looked up now, so that a misspelt one is refused when
 * the batcher is made rather than at its first group.
 *
 * @throws ValidationError at `options.<field>` (`options.roc.seed`, `options.advantages.epsilon`).
 */
export function resolveBatcherOptions(options: RocBatcherOptions): ResolvedBatcherOptions {
  const resolved = parseOrThrow(rocBatcherOptionsSchema, options, "options");
  const estimator = resolved.advantages.estimator;
  if (!advantageEstimatorNames().includes(estimator)) {
    throw invalid(
      "options.advantages.estimator",
      `unknown estimator "${estimator}"; registered: ${advantageEstimatorNames().join(", ")}`,
    );
  }
  return resolved;
}
