/**
 * The tools a rollout could call, from `options.tools`: each definition in its provider's own shape or the neutral
 * one, read to a name and a parameter check. A call to a name not defined, or with arguments its schema refuses, is a
 * parse error.
 */
import { closestKey, invalid } from "../errors.js";
import { type ArgumentsCheck, compileSchema } from "./json-schema.js";
import { type Fields, objectAt, stringAt } from "./records.js";

/** A defined tool: its parameter check, undefined where the definition declares no schema. */
export interface ToolSpec {
  readonly check: ArgumentsCheck | undefined;
}

/** The keys the shapes below use: another key close to one of them is a misspelling, not a field of the provider's. */
const DEFINITION_KEYS = ["type", "name", "parameters", "input_schema", "inputSchema", "function", "custom"];

/**
 * Reads each definition by its shape:
 * - `{ name, parameters? }`: neutral, and the OpenAI Responses API's function tools (`type: "function"`);
 * - `{ type: "function", function: { name, parameters? } }`: OpenAI Chat Completions function tools;
 * - `{ type: "custom", custom: { name } }` (Chat Completions) or `{ type: "custom", name }` (Responses): custom tools,
 *   whose free-text input has no schema;
 * - `{ name, input_schema }`: Anthropic; `{ name, inputSchema }`: MCP (`tools/list`).
 */
export function readToolDefinitions(definitions: readonly unknown[], path: string): Map<string, ToolSpec> {
  const tools = new Map<string, ToolSpec>();
  definitions.forEach((value, k) => {
    const at = `${path}[${k}]`;
    const definition = objectAt(value, at);
    refuseMisspelt(definition, at);
    const { name, schema, schemaPath } = nameAndSchema(definition, at);
    if (tools.has(name)) throw invalid(`${at}.name`, `the tool "${name}" is defined twice`);
    tools.set(name, { check: schema === undefined ? undefined : compileSchema(schema, schemaPath) });
  });
  return tools;
}

function nameAndSchema(definition: Fields, at: string): { name: string; schema: unknown; schemaPath: string } {
  const nested = definition.function ?? definition.custom;
  if (nested !== undefined) {
    const key = definition.function !== undefined ? "function" : "custom";
    const inner = objectAt(nested, `${at}.${key}`);
    refuseMisspelt(inner, `${at}.${key}`);
    const name = stringAt(inner.name, `${at}.${key}.name`);
    return { name, schema: key === "function" ? inner.parameters : undefined, schemaPath: `${at}.function.parameters` };
  }
  const name = stringAt(definition.name, `${at}.name`);
  const schemaKeys = ["parameters", "input_schema", "inputSchema"].filter((key) => definition[key] !== undefined);
  if (schemaKeys.length > 1) {
    throw invalid(`${at}.${schemaKeys[1]}`, `a definition has one schema, and this one also has ${schemaKeys[0]}`);
  }
  const key = schemaKeys[0];
  return { name, schema: key === undefined ? undefined : definition[key], schemaPath: `${at}.${key}` };
}

/** A key close to a definition key (`paramters`, `input_shema`) would leave the tool without a schema: refused. */
function refuseMisspelt(record: Fields, at: string): void {
  for (const key of Object.keys(record)) {
    if (DEFINITION_KEYS.includes(key)) continue;
    const meant = closestKey(key, DEFINITION_KEYS);
    if (meant !== undefined)
      throw invalid(`${at}.${key}`, `not a field of a tool definition; did you mean "${meant}"?`);
  }
}
