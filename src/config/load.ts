import { readFile } from 'node:fs/promises';
import { LineCounter, parseAllDocuments, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from './problems.js';

/** Where each top-level value came from when it was not the file (flag or variable name). */
export type OverrideSources = ReadonlyMap<string, string>;

/** Raw, not yet validated configuration: the YAML document's plain data. */
export type RawConfig = Record<string, unknown>;

interface SourceText {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

/**
 * Reads and validates a configuration: the YAML file (if any), with `overrides` (from
 * flags and environment variables, already shaped like the YAML) merged on top. Every
 * problem is collected and thrown at once as a ConfigError with file:line positions.
 * The result is deeply frozen.
 */
export async function loadConfig<S extends z.ZodType>(
  schema: S,
  options: { file?: string | undefined; overrides?: RawConfig; overrideSources?: OverrideSources },
): Promise<z.output<S>> {
  let raw: RawConfig = {};
  let source: SourceText | null = null;
  if (options.file !== undefined) {
    const text = await readFile(options.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([
        { path: '', source: options.file, message: `cannot read the config file: ${err.code ?? err.message}; check the path given to -c` },
      ]);
    });
    const parsed = parseYaml(options.file, text);
    source = parsed.source;
    raw = parsed.raw;
  }
  const merged = deepMerge(raw, options.overrides ?? {});
  return validate(schema, merged, source, options.overrideSources ?? new Map());
}

/** Validates already-parsed data (used by tests and by the flag-only path). */
export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, docs = 'docs/sidecar.md'): z.output<S> {
  return validate(schema, raw, null, new Map(), docs);
}

/** One document of a multi-document YAML file, ready for `validateDocument`. */
export interface YamlDocument {
  readonly raw: unknown;
  readonly source: SourceText;
}

/**
 * Splits YAML text into its documents (`---` separated), skipping empty ones. Syntax errors
 * of every document are thrown together as one ConfigError with file:line:col.
 */
export function parseYamlDocuments(file: string, text: string): YamlDocument[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  const problems: ConfigProblem[] = list.flatMap((doc) =>
    doc.errors.map((e) => ({ path: '', source: `${file}:${e.linePos?.[0].line ?? '?'}:${e.linePos?.[0].col ?? '?'}`, message: `YAML syntax: ${yamlReason(e.message)}` })),
  );
  if (problems.length > 0) throw new ConfigError(problems);
  return list.filter((doc) => doc.contents !== null).map((doc) => ({ raw: doc.toJS() as unknown, source: { file, doc, lines } }));
}

/**
 * Validates one document and returns its frozen value, or the problems found (with
 * file:line:col), so that a caller can collect the problems of several documents.
 */
export function validateDocument<S extends z.ZodType>(schema: S, doc: YamlDocument, docs: string): z.output<S> | ConfigProblem[] {
  try {
    return validate(schema, doc.raw, doc.source, new Map(), docs);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

function parseYaml(file: string, text: string): { source: SourceText; raw: RawConfig } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        path: '',
        source: `${file}:${e.linePos?.[0].line ?? '?'}:${e.linePos?.[0].col ?? '?'}`,
        message: `YAML syntax: ${yamlReason(e.message)}`,
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError([{ path: '', source: file, message: 'the config file must be a YAML mapping (key: value)' }]);
  }
  return { source: { file, doc, lines }, raw: raw as RawConfig };
}

function validate<S extends z.ZodType>(schema: S, raw: unknown, source: SourceText | null, overrideSources: OverrideSources, docs = 'docs/sidecar.md'): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return deepFreeze(result.data);
  const problems: ConfigProblem[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const full = [...path, key];
        problems.push({
          path: full.join('.'),
          source: locate(source, full, true, overrideSources),
          message: `unknown field "${key}"; check its spelling against ${docs}`,
        });
      }
      continue;
    }
    if (issue.code === 'invalid_type' && isMissing(raw, path)) {
      problems.push({
        path: path.join('.'),
        source: locate(source, path, false, overrideSources),
        message: `missing required field "${String(path[path.length - 1])}" (a ${issue.expected}); ${docs === 'docs/sidecar.md' ? 'add it to the file or set it with its flag or WEFT_* variable' : `add it (see ${docs})`}`,
      });
      continue;
    }
    const value = valueAt(raw, path);
    const got = value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
    problems.push({ path: path.join('.'), source: locate(source, path, false, overrideSources), message: `${issue.message}${got}` });
  }
  throw new ConfigError(problems);
}

function locate(source: SourceText | null, path: (string | number)[], atKey: boolean, overrideSources: OverrideSources): string | undefined {
  const top = path[0];
  // The most specific override that covers the path: `inbound.protocol` before `inbound`.
  for (let n = path.length; n >= 1; n--) {
    const found = overrideSources.get(path.slice(0, n).join('.'));
    if (found !== undefined) return found;
  }
  if (typeof top === 'string' && overrideSources.has(top)) return overrideSources.get(top);
  if (source === null) return undefined;
  let node: unknown = source.doc.contents;
  let best: Node | null = isNode(node) ? node : null;
  for (let i = 0; i < path.length; i++) {
    const key = path[i];
    if (!isMap(node) && !(node && typeof node === 'object' && 'items' in node)) break;
    const items = (node as { items: unknown[] }).items;
    let next: unknown;
    if (isMap(node)) {
      const pair = items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (!isPair(pair)) break;
      next = atKey && i === path.length - 1 ? pair.key : pair.value;
    } else {
      next = typeof key === 'number' ? items[key] : undefined;
    }
    if (!isNode(next)) break;
    best = next;
    node = next;
  }
  const offset = best?.range?.[0];
  if (offset === undefined) return source.file;
  const pos = source.lines.linePos(offset);
  return `${source.file}:${pos.line}:${pos.col}`;
}

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && 'range' in v;
}

/** True when the field at `path` is absent from an existing mapping (not merely of the wrong type). */
function isMissing(raw: unknown, path: (string | number)[]): boolean {
  if (path.length === 0) return false;
  let v = raw;
  for (const key of path.slice(0, -1)) {
    if (typeof v !== 'object' || v === null) return false;
    v = (v as Record<string | number, unknown>)[key];
  }
  return typeof v === 'object' && v !== null && (v as Record<string | number, unknown>)[path[path.length - 1]!] === undefined;
}

function valueAt(raw: unknown, path: (string | number)[]): unknown {
  let v = raw;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return typeof v === 'object' ? undefined : v;
}

/** Merges `over` into `base`: mappings merge key by key, everything else is replaced. */
export function deepMerge(base: RawConfig, over: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is RawConfig {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** The first line of a yaml library error without its trailing "at line L, column C:" (the location is given separately). */
function yamlReason(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
