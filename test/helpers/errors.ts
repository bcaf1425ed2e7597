import { expect } from "vitest";
import { GrpoRocError, ValidationError } from "../../src/index.js";

export function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return expect.fail("expected a throw, but the call returned");
}

/** Asserts a ValidationError (hence a GrpoRocError) with an issue at `path`, and that the message names it. */
export function expectValidationError(run: () => unknown, path: string, message?: RegExp): ValidationError {
  const error = thrown(run);
  expect(error).toBeInstanceOf(ValidationError);
  expect(error).toBeInstanceOf(GrpoRocError);
  const validation = error as ValidationError;
  expect(validation.name).toBe("ValidationError");
  expect(validation.issues.map((issue) => issue.path)).toContain(path);
  expect(validation.message).toContain(`${path}: `);
  if (message !== undefined) expect(validation.message).toMatch(message);
  return validation;
}

/** What an async call threw, or undefined when it resolved. */
export async function rejection(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** An async call refused with a ValidationError that has an issue at `path` and a message matching `says`. */
export async function expectRefused(run: () => Promise<unknown>, path: string, says: RegExp): Promise<ValidationError> {
  const error = await rejection(run);
  expect(error, `expected a ValidationError at ${path}`).toBeInstanceOf(ValidationError);
  const validation = error as ValidationError;
  expect(
    validation.issues.map((issue) => issue.path),
    validation.message,
  ).toContain(path);
  expect(validation.message).toMatch(says);
  return validation;
}
