/**
 * What fromTrlConfig and fromVerlConfig share: the checks at the door (a strict schema per peer config, whose paths
 * start at `config`), and the one rule of the translation tables: a peer value is either a grpo-roc option, or a
 * variant grpo-roc does not implement yet, which is an error that names it, never a silent default.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import { invalid, safeParse, ValidationError } from "../errors.js";

/** A finite number (zod 4's z.number() refuses NaN and ±Infinity). */
export const finite = /* @__PURE__ */ z.number();
/** A finite number ≥ 0. */
export const nonnegative = /* @__PURE__ */ pure(() => z.number().check(z.nonnegative()));
/** An integer ≥ 1. */
export const positiveInt = /* @__PURE__ */ pure(() => z.int().check(z.positive()));

/**
 * The fields of keys a peer config may carry that change nothing grpo-roc computes (learning rate, logging, vLLM
 * server settings, …): accepted with any value, read by nobody. Listing them, rather than letting every key through,
 * keeps a misspelt key that *does* matter (`epsilon_hgih`) an error.
 */
export function acceptedUnused<const K extends string>(
  keys: readonly K[],
): Record<K, z.ZodMiniOptional<z.ZodMiniUnknown>> {
  return Object.fromEntries(keys.map((key) => [key, z.optional(z.unknown())])) as Record<
    K,
    z.ZodMiniOptional<z.ZodMiniUnknown>
  >;
}

/**
 * A translation table's entry for a variant grpo-roc does not implement yet. It keeps the peer's value a known one
 * (so it is not reported as a misspelling), and its translation an error that names it.
 */
export const NOT_YET = "not supported by grpo-roc yet" as const;

/** A table from a peer's value to grpo-roc's translation of it, or NOT_YET. */
export type Table<T> = Readonly<Record<string, T | typeof NOT_YET>>;

/** The error of a known peer value or key that grpo-roc does not implement. */
export function unsupported(path: string, what: string): ValidationError {
  return invalid(path, `${what} is ${NOT_YET}; its translation will be added when grpo-roc implements it`);
}

/**
 * `table[value]`, or an error at `path`: NOT_YET gives "not supported yet", a value absent from the table gives the
 * list of the values the peer accepts.
 */
export function lookup<T>(table: Table<T>, value: string, path: string): T {
  const entry = Object.hasOwn(table, value) ? table[value] : undefined;
  if (entry === NOT_YET) throw unsupported(path, `"${value}"`);
  if (entry === undefined)
    throw invalid(path, `"${value}" is not one of the peer's values: ${Object.keys(table).join(", ")}`);
  return entry;
}

/**
 * An error at `path` for a value absent from the table (a misspelling), checked even where the feature is off: a known
 * value, NOT_YET included, is accepted and simply unused there.
 */
export function requireKnown(table: Table<unknown>, value: string, path: string): void {
  if (!Object.hasOwn(table, value))
    throw invalid(path, `"${value}" is not one of the peer's values: ${Object.keys(table).join(", ")}`);
}

/** An error for a known key whose value here selects a feature grpo-roc does not implement yet. */
export function requireDefault(path: string, value: unknown, fallback: unknown, feature: string): void {
  if (value !== fallback)
    throw unsupported(path, `${JSON.stringify(value)} (${feature}; only ${JSON.stringify(fallback)} is translated)`);
}

/**
 * The last check of a translation: grpo-roc's own schema over the options it produced. A rule the peer's value
 * breaks there (a clip ε above 1, a temperature of 0) is reported at the peer's key that gave the option, `blame`'s
 * answer for the option's path, with the option named in the message.
 */
export function checkTranslated(
  schema: z.core.$ZodType,
  options: unknown,
  blame: (optionPath: readonly PropertyKey[]) => string,
): void {
  const result = safeParse(schema, options);
  if (result.success) return;
  throw new ValidationError(
    result.error.issues.map((issue) => ({
      path: blame(issue.path),
      message: `${issue.message} (as grpo-roc's option ${issue.path.map(String).join(".")})`,
    })),
  );
}
