// Config schemas (runtime/agent/config_schema.py): a consumer's keys, their types and ranges, and the
// one rule that checks a value, with the same messages as the Python side:
//   check(intKey("max_connections", 1, 100000), "abc", "calculator")
//   -> throws "calculator/max_connections must be an integer between 1 and 100000; got 'abc'"
import { create } from "@bufbuild/protobuf";
import { ConfigKeySpecSchema, ConfigSchemaSchema, type ConfigKeySpec, type ConfigSchema } from "../gen/runtime/v1/config_pb";

const QUOTE_LIMIT = 200;
const BOOL_WORDS: Record<string, string> = { true: "true", false: "false", "1": "true", "0": "false", yes: "true", no: "false" };

/** Python's repr of a string for a message, cut to QUOTE_LIMIT characters (runtime.errors.quote). */
export function quote(text: string): string {
  const repr = (s: string) => (s.includes("'") && !s.includes('"') ? `"${s}"` : `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`);
  return text.length <= QUOTE_LIMIT ? repr(text) : `${repr(text.slice(0, QUOTE_LIMIT))}... (${text.length} characters)`;
}

export class SchemaViolation extends Error {}

/** An int key with an inclusive range. */
export function intKey(key: string, lo: number, hi: number, defaultValue: number, description = ""): ConfigKeySpec {
  return create(ConfigKeySpecSchema, {
    key,
    valueType: "int",
    min: BigInt(lo),
    max: BigInt(hi),
    defaultValue: String(defaultValue),
    description,
  });
}

export function schema(namespace: string, keys: ConfigKeySpec[], registeredBy = ""): ConfigSchema {
  return create(ConfigSchemaSchema, { namespace, keys, registeredBy });
}

/** What a key allows, as the end of "<ns>/<key> must be ...". */
export function describe(spec: ConfigKeySpec): string {
  if (spec.valueType === "int") {
    if (spec.min !== undefined && spec.max !== undefined) return `an integer between ${spec.min} and ${spec.max}`;
    if (spec.min !== undefined) return `an integer of at least ${spec.min}`;
    if (spec.max !== undefined) return `an integer of at most ${spec.max}`;
    return "an integer";
  }
  if (spec.valueType === "bool") return "true or false";
  if (spec.valueType === "json") return "valid JSON";
  if (spec.choices.length > 0) return "one of " + spec.choices.map(quote).join(", ");
  return "a string";
}

/** The value as stored (ints and bools normalized); throws SchemaViolation saying what is allowed. */
export function check(spec: ConfigKeySpec, value: string, namespace: string): string {
  const normalized = parse(spec, value);
  if (normalized === null) throw new SchemaViolation(`${namespace}/${spec.key} must be ${describe(spec)}; got ${quote(value)}`);
  return normalized;
}

function parse(spec: ConfigKeySpec, value: string): string | null {
  if (spec.valueType === "int") {
    const text = value.trim();
    if (!/^[+-]?\d+(_\d+)*$/.test(text)) return null; // what Python's int() accepts
    const n = BigInt(text.replace(/_/g, ""));
    if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) return null;
    return n.toString();
  }
  if (spec.valueType === "bool") return BOOL_WORDS[value.trim().toLowerCase()] ?? null;
  if (spec.valueType === "json") {
    try {
      JSON.parse(value);
      return value;
    } catch {
      return null;
    }
  }
  if (spec.choices.length > 0 && !spec.choices.includes(value)) return null;
  return value;
}

/** The spec of `key` in `sch`, or undefined when the schema does not name it. */
export function specOf(sch: ConfigSchema | undefined, key: string): ConfigKeySpec | undefined {
  return sch?.keys.find((s) => s.key === key);
}
