import type { TaskKind } from '../client/index.js';

/** One input of a kind's form, read from its JSON Schema. */
export type FormField =
  | (FieldBase & {
      readonly type: 'number';
      readonly integer: boolean;
      readonly min?: number;
      readonly max?: number;
    })
  | (FieldBase & { readonly type: 'choice'; readonly options: readonly string[] })
  | (FieldBase & { readonly type: 'text' })
  /** Any JSON value, typed as JSON text. */
  | (FieldBase & { readonly type: 'json' });

interface FieldBase {
  /** The property of the task input; `''` for a field that holds the whole input. */
  readonly name: string;
  readonly label: string;
  readonly required: boolean;
  readonly description?: string;
}

/** A form to start tasks of one kind. */
export interface KindForm {
  readonly kind: string;
  readonly description: string;
  readonly external: boolean;
  readonly fields: readonly FormField[];
}

/** What the form's inputs hold (`v-model` on a number input gives a number). */
export type FormValues = Record<string, string | number>;

export type BuiltInput =
  | { readonly ok: true; readonly input: unknown }
  | { readonly ok: false; readonly field: string; readonly message: string };

/** Values the page starts with, so every form can be submitted as it is. */
const EXAMPLES: Readonly<Record<string, FormValues>> = {
  sleep: { ms: 3000 },
  echo: { value: '{ "hello": "world" }' },
  checksum: { text: 'hello', rounds: 200000 },
  external: { '': '{ "job": "render" }' },
};

type JsonObject = Readonly<Record<string, unknown>>;

function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

function fieldFor(name: string, schema: JsonObject, required: boolean): FormField {
  const description = typeof schema['description'] === 'string' ? schema['description'] : undefined;
  const base = { name, label: name, required, ...(description ? { description } : {}) };
  const type = schema['type'];
  if (type === 'integer' || type === 'number') {
    return {
      ...base,
      type: 'number',
      integer: type === 'integer',
      ...(typeof schema['minimum'] === 'number' ? { min: schema['minimum'] } : {}),
      ...(typeof schema['maximum'] === 'number' ? { max: schema['maximum'] } : {}),
    };
  }
  if (type === 'string' && Array.isArray(schema['enum'])) {
    return { ...base, type: 'choice', options: schema['enum'].filter((v) => typeof v === 'string') };
  }
  if (type === 'string') return { ...base, type: 'text' };
  return { ...base, type: 'json' };
}

/**
 * A form from a kind's input schema: one field per property of an object schema (numbers,
 * choices, text; anything else as JSON), or one JSON field for the whole input otherwise.
 */
export function formForKind(kind: TaskKind): KindForm {
  const schema = asObject(kind.inputSchema) ?? {};
  const properties = asObject(schema['properties']);
  const required = new Set(Array.isArray(schema['required']) ? schema['required'] : []);
  const fields: FormField[] = properties
    ? Object.entries(properties).map(([name, property]) =>
        fieldFor(name, asObject(property) ?? {}, required.has(name)),
      )
    : [{ name: '', label: 'input (JSON)', required: true, type: 'json' }];
  return { kind: kind.name, description: kind.description, external: kind.external, fields };
}

/** The form's first values: the page's example for the kind, else each property's schema default. */
export function initialValues(kind: TaskKind, form: KindForm): FormValues {
  const properties = asObject(asObject(kind.inputSchema)?.['properties']) ?? {};
  const values: FormValues = {};
  for (const field of form.fields) {
    const fallback = asObject(properties[field.name])?.['default'];
    const example = EXAMPLES[kind.name]?.[field.name];
    if (example !== undefined) values[field.name] = example;
    else if (typeof fallback === 'string' || typeof fallback === 'number') values[field.name] = fallback;
    else values[field.name] = field.type === 'json' && field.name === '' ? '{}' : '';
  }
  return values;
}

function readField(field: FormField, raw: string): { value: unknown } | { message: string } {
  switch (field.type) {
    case 'number': {
      const value = Number(raw);
      if (!Number.isFinite(value)) return { message: 'expected a number' };
      if (field.integer && !Number.isInteger(value)) return { message: 'expected a whole number' };
      if (field.min !== undefined && value < field.min) return { message: `at least ${field.min}` };
      if (field.max !== undefined && value > field.max) return { message: `at most ${field.max}` };
      return { value };
    }
    case 'json':
      try {
        return { value: JSON.parse(raw) };
      } catch {
        return { message: 'not valid JSON' };
      }
    default:
      return { value: raw };
  }
}

/**
 * The task input the form describes, or the first field that does not hold a usable value.
 * An empty optional field is left out, so the service applies its default.
 */
export function buildInput(form: KindForm, values: FormValues): BuiltInput {
  const input: Record<string, unknown> = {};
  for (const field of form.fields) {
    const raw = String(values[field.name] ?? '');
    if (raw.trim() === '') {
      if (!field.required) continue;
      if (field.type !== 'text')
        return { ok: false, field: field.name, message: `${field.label} is required` };
    }
    const read = readField(field, field.type === 'text' ? raw : raw.trim());
    if ('message' in read)
      return { ok: false, field: field.name, message: `${field.label}: ${read.message}` };
    if (field.name === '') return { ok: true, input: read.value };
    input[field.name] = read.value;
  }
  return { ok: true, input };
}
