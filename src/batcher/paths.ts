import { ValidationError } from "../errors.js";

/**
 * Runs `run`, renaming the paths of a ValidationError it throws: RoC and the advantages name what they were given
 * (`rollouts[3]`, `rewards[1]`, `options.seed`), the batcher's caller knows it by other names (`groups[2][3]`,
 * `options.roc.seed`).
 */
export function withRenamedPaths<T>(run: () => T, rename: (path: string) => string): T {
  try {
    return run();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new ValidationError(error.issues.map(({ path, message }) => ({ path: rename(path), message })));
  }
}

/** An advantage's `rewards[k]`, as the rollout it belongs to names it; other paths as `rest` renames them. */
export function rewardPath(path: string, rolloutPath: (k: number) => string, rest: (path: string) => string): string {
  const reward = /^rewards\[(\d+)\]$/.exec(path);
  return reward === null ? rest(path) : `${rolloutPath(Number(reward[1]))}.reward`;
}
