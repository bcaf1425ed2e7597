/**
 * A tool's parameter schema, checked on a call's arguments: a subset of JSON Schema, the keywords tool definitions
 * use to say what a call must send. `type` (one or a list of "object", "array", "string", "number", "integer",
 * "boolean", "null"), `properties`, `required`, `additionalProperties` (a boolean or a schema), `items` (a schema,
 * or a list for positions), `enum`, `const` and `anyOf`; `true` and `false` as schemas. Other keywords (`$ref`,
 * `pattern`, `minimum`, `format`, …) are not checked: a call they would refuse passes, and none that satisfies the
 * schema is ever refused. The schema itself is checked once, when the options are read, and refused at the keyword
 * that is malformed.
 */
import { invalid } from "../errors.js";
import { describeValue } from "../numeric.js";

/** Checks a value; returns the first rule it breaks, as `at: message`, or undefined. */
export type ArgumentsCheck = (value: unknown) => string | undefined;

type Check = (value: unknown, at: string) => string | undefined;

const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;
type JsonType = (typeof TYPES)[number];
/** Deeper schemas are refused, not recursed into: the checker and its values stay within the stack. */
const MAX_DEPTH = 64;

export function compileSchema(schema: unknown, path: string): ArgumentsCheck {
  const check = compile(schema, path, 0);
  return (value) => check(value, "arguments");
}

function compile(schema: unknown, path: string, depth: number): Check {
  if (depth > MAX_DEPTH) throw invalid(path, `the schema nests deeper than ${MAX_DEPTH} levels`);
  if (schema === true) return () => undefined;
  if (schema === false) return (_, at) => `${at}: the schema allows no value here`;
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw invalid(path, `expected a JSON Schema (an object or a boolean), received ${describeValue(schema)}`);
  }
  const keywords = schema as Readonly<Record<string, unknown>>;
  const checks: Check[] = [];
  if (keywords.type !== undefined) checks.push(typeCheck(keywords.type, `${path}.type`));
  if (keywords.enum !== undefined) checks.push(enumCheck(keywords.enum, `${path}.enum`, depth));
  if (keywords.const !== undefined) checks.push(constCheck(keywords.const, `${path}.const`, depth));
  if (keywords.anyOf !== undefined) checks.push(anyOfCheck(keywords.anyOf, `${path}.anyOf`, depth));
  const objectCheck = objectChecks(keywords, path, depth);
  if (objectCheck !== undefined) checks.push(objectCheck);
  if (keywords.items !== undefined) checks.push(itemsCheck(keywords.items, `${path}.items`, depth));
  return (value, at) => {
    for (const check of checks) {
      const issue = check(value, at);
      if (issue !== undefined) return issue;
    }
    return undefined;
  };
}

function typeCheck(type: unknown, path: string): Check {
  const types = Array.isArray(type) ? type : [type];
  for (const [k, t] of types.entries()) {
    if (!(TYPES as readonly unknown[]).includes(t)) {
      const where = Array.isArray(type) ? `${path}[${k}]` : path;
      throw invalid(where, `expected one of ${TYPES.join(", ")}, received ${describeValue(t)}`);
    }
  }
  const allowed = types as JsonType[];
  return (value, at) =>
    allowed.some((t) => isOfType(value, t))
      ? undefined
      : `${at}: expected ${allowed.join(" or ")}, received ${kindOf(value)}`;
}

function isOfType(value: unknown, type: JsonType): boolean {
  switch (type) {
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    case "null":
      return value === null;
    default:
      return typeof value === type;
  }
}

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (Number.isInteger(value)) return "integer";
  return typeof value;
}

function enumCheck(values: unknown, path: string, depth: number): Check {
  if (!Array.isArray(values)) throw invalid(path, `expected an array of values, received ${describeValue(values)}`);
  for (const [k, value] of values.entries()) requireShallow(value, `${path}[${k}]`, depth);
  return (value, at) =>
    values.some((allowed: unknown) => jsonEqual(allowed, value)) ? undefined : `${at}: not one of the enum's values`;
}

function constCheck(constant: unknown, path: string, depth: number): Check {
  requireShallow(constant, path, depth);
  return (value, at) => (jsonEqual(constant, value) ? undefined : `${at}: not the schema's const value`);
}

function anyOfCheck(schemas: unknown, path: string, depth: number): Check {
  if (!Array.isArray(schemas) || schemas.length === 0) {
    throw invalid(path, `expected a non-empty array of schemas, received ${describeValue(schemas)}`);
  }
  const checks = schemas.map((schema: unknown, k) => compile(schema, `${path}[${k}]`, depth + 1));
  return (value, at) => {
    const issues = checks.map((check) => check(value, at));
    return issues.includes(undefined) ? undefined : `${at}: matches none of anyOf (${issues[0]})`;
  };
}

/** `properties`, `required` and `additionalProperties`, which apply to objects only. */
function objectChecks(keywords: Readonly<Record<string, unknown>>, path: string, depth: number): Check | undefined {
  const { properties, required, additionalProperties } = keywords;
  if (properties === undefined && required === undefined && additionalProperties === undefined) return undefined;
  const propertyChecks = new Map<string, Check>();
  if (properties !== undefined) {
    if (!isObject(properties)) {
      throw invalid(`${path}.properties`, `expected an object of schemas, received ${describeValue(properties)}`);
    }
    for (const [name, schema] of Object.entries(properties)) {
      propertyChecks.set(name, compile(schema, `${path}.properties.${name}`, depth + 1));
    }
  }
  const requiredNames = required === undefined ? [] : requiredList(required, `${path}.required`);
  const others =
    additionalProperties === undefined || additionalProperties === false
      ? undefined
      : compile(additionalProperties, `${path}.additionalProperties`, depth + 1);
  return (value, at) => {
    if (!isObject(value)) return undefined;
    for (const name of requiredNames) {
      if (!Object.hasOwn(value, name)) return `${at}.${name}: required, and missing`;
    }
    for (const [name, field] of Object.entries(value)) {
      const declared = propertyChecks.get(name);
      if (declared === undefined && additionalProperties === false) return `${at}.${name}: not a declared property`;
      const issue = (declared ?? others)?.(field, `${at}.${name}`);
      if (issue !== undefined) return issue;
    }
    return undefined;
  };
}

function requiredList(required: unknown, path: string): string[] {
  if (!Array.isArray(required)) throw invalid(path, `expected an array of names, received ${describeValue(required)}`);
  return required.map((name: unknown, k) => {
    if (typeof name !== "string") throw invalid(`${path}[${k}]`, `expected a string, received ${describeValue(name)}`);
    return name;
  });
}

function itemsCheck(items: unknown, path: string, depth: number): Check {
  if (Array.isArray(items)) {
    const positions = items.map((schema: unknown, k) => compile(schema, `${path}[${k}]`, depth + 1));
    return (value, at) => {
      if (!Array.isArray(value)) return undefined;
      for (const [k, check] of positions.entries()) {
        if (k >= value.length) break;
        const issue = check(value[k], `${at}[${k}]`);
        if (issue !== undefined) return issue;
      }
      return undefined;
    };
  }
  const check = compile(items, path, depth + 1);
  return (value, at) => {
    if (!Array.isArray(value)) return undefined;
    for (let k = 0; k < value.length; k++) {
      const issue = check(value[k], `${at}[${k}]`);
      if (issue !== undefined) return issue;
    }
    return undefined;
  };
}

/** An enum or const value no deeper than the schema limit, so that comparing with it stays within the stack. */
function requireShallow(value: unknown, path: string, depth: number): void {
  let level: unknown[] = [value];
  for (let d = depth; level.length > 0; d++) {
    if (d > MAX_DEPTH) throw invalid(path, `the value nests deeper than ${MAX_DEPTH} levels`);
    level = level.flatMap((item) => (typeof item === "object" && item !== null ? Object.values(item) : []));
  }
}

/** Equality of JSON values: same type, same numbers and strings, arrays item by item, objects key by key. */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item: unknown, k) => jsonEqual(item, b[k]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}
