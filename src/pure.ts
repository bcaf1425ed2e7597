/**
 * `build()`. A module-level value built by calls is written `pure(() => …)` behind a `@__PURE__` comment, so that
 * a bundler drops it when nothing uses it. Otherwise every consumer's bundle keeps it: a bundler cannot tell that
 * `z.number().check(…)`, an object of such fields, or a spread changes nothing, and the package's schemas, presets
 * and tables would all ride along with `{ resampleOnCorrect, advantages, policyLoss }` into a browser bundle
 * (test/package-install.test.ts holds it to 30 KB gzip). The comment must sit at each call: esbuild honours a
 * function's own `@__NO_SIDE_EFFECTS__` only in the file that declares it, and tsup spreads the modules over several
 * files. A single call on plain values (`z.strictObject(shape)`) takes the comment without the wrapper. Only for
 * values whose construction has no effect outside them.
 */
export function pure<T>(build: () => T): T {
  return build();
}
