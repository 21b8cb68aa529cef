import { StoreInvalidError } from './errors.js';
import type { JsonValue, ResourceInput, ResourceKey, StoredResource, WriteOptions } from './store.js';

/** Largest serialised spec accepted, in bytes of UTF-8. */
export const MAX_SPEC_BYTES = 1024 * 1024;

const KIND = /^[A-Z][A-Za-z0-9]{0,62}$/;
const NAMESPACE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME = /^[a-z0-9](?:[-.a-z0-9]{0,251}[a-z0-9])?$/;

function describe(value: unknown): string {
  if (typeof value === 'string') return value === '' ? 'empty' : JSON.stringify(value);
  return `not a string (${value === null ? 'null' : typeof value})`;
}

/** Throws `StoreInvalidError` unless `kind` is a PascalCase kind name. */
export function checkKind(kind: unknown): asserts kind is string {
  if (typeof kind !== 'string' || !KIND.test(kind)) {
    throw new StoreInvalidError(
      `resource kind is ${describe(kind)}: a kind is a PascalCase name of letters and digits, ` +
        'at most 63 characters, e.g. "Service" or "HTTPRoute"',
    );
  }
}

/** Throws `StoreInvalidError` unless `namespace` is a DNS label. */
export function checkNamespace(namespace: unknown): asserts namespace is string {
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new StoreInvalidError(
      `resource namespace is ${describe(namespace)}: a namespace is a DNS label (lower case ` +
        'letters, digits and "-", starting and ending with a letter or digit, at most 63 characters), e.g. "default"',
    );
  }
}

/** Throws `StoreInvalidError` unless `name` is a DNS subdomain-style name. */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new StoreInvalidError(
      `resource name is ${describe(name)}: a name is lower case letters, digits, "-" and ".", ` +
        'starting and ending with a letter or digit, at most 253 characters, e.g. "web" or "web.v2"',
    );
  }
}

/** Checks the three parts of a key. */
export function checkKey(kind: unknown, namespace: unknown, name: unknown): void {
  checkKind(kind);
  checkNamespace(namespace);
  checkName(name);
}

/** Throws `StoreInvalidError` unless `value` is a non-negative safe integer. */
export function checkRevision(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    const shown = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
    throw new StoreInvalidError(`${what} is ${shown}: a revision is a whole number >= 0`);
  }
}

/** The `expectedRevision` of write options, validated (undefined when unconditional). */
export function expectedRevisionOf(options: WriteOptions | undefined): number | undefined {
  const expected = options?.expectedRevision;
  if (expected === undefined) return undefined;
  checkRevision(expected, 'expectedRevision');
  return expected;
}

function checkJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new StoreInvalidError(`spec${path} is ${value}: JSON has only finite numbers`);
      return;
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw new StoreInvalidError(`spec${path} refers back to itself: a spec must be a tree`);
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw new StoreInvalidError(`spec${path}[${i}] is a hole in a sparse array: JSON arrays have none`);
          checkJson(value[i], `${path}[${i}]`, seen);
        }
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const type = (value as { constructor?: { name?: string } }).constructor?.name ?? 'an object with a prototype';
          throw new StoreInvalidError(`spec${path} is a ${type}: a spec holds only plain objects and arrays`);
        }
        if (Object.getOwnPropertySymbols(value).length > 0) {
          throw new StoreInvalidError(`spec${path} has symbol keys: JSON keys are strings`);
        }
        for (const [key, item] of Object.entries(value)) checkJson(item, `${path}.${key}`, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw new StoreInvalidError(`spec${path} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}: a spec holds only JSON values`);
  }
}

/**
 * Validates a resource to write and returns its spec serialised as JSON text.
 * Throws `StoreInvalidError` naming the first problem.
 */
export function checkResourceInput(resource: ResourceInput): string {
  if (typeof resource !== 'object' || resource === null) {
    throw new StoreInvalidError('a resource is an object { kind, namespace, name, spec }');
  }
  checkKey(resource.kind, resource.namespace, resource.name);
  checkJson(resource.spec, '', new Set());
  const text = JSON.stringify(resource.spec);
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) {
    throw new StoreInvalidError(
      `the spec of ${resource.kind} ${resource.namespace}/${resource.name} is ${Buffer.byteLength(text)} bytes ` +
        `of JSON; the limit is ${MAX_SPEC_BYTES}: split it into several resources`,
    );
  }
  return text;
}

function deepFreeze(value: JsonValue): JsonValue {
  if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** A frozen `StoredResource` with its spec parsed from JSON text. */
export function storedResource(
  key: ResourceKey,
  specJson: string,
  revision: number,
  createdRevision: number,
): StoredResource {
  return Object.freeze({
    kind: key.kind,
    namespace: key.namespace,
    name: key.name,
    spec: deepFreeze(JSON.parse(specJson) as JsonValue),
    revision,
    createdRevision,
  });
}
