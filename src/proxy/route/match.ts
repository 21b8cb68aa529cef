import type { GrpcRouteMatch, HeaderMatchConfig, HttpRouteMatch } from '../../config/route-schema.js';
import { compileRouteRegex, escapeRegex, regexLiteralPrefix } from './regex.js';
import type { RequestView } from './types.js';

/**
 * One match of one rule, compiled, with what ranks it. HTTPRoute and GRPCRoute matches
 * share this form: a GRPCRoute method match is a path match on `/<service>/<method>`.
 */

/** Path test: an anchored regex. */
export const PATH_REGEX = 0;
/** Path test: a prefix of whole segments. */
export const PATH_PREFIX = 1;
/** Path test: equality (looked up in a map by the router). */
export const PATH_EXACT = 2;

/*
 * Precedence tiers (higher first), see router.ts: exact paths, then patterns (HTTPRoute
 * regexes and GRPCRoute method matches), then prefixes (the catch-alls).
 */
/** Tier of PathPrefix matches and GRPCRoute matches without a method. */
export const TIER_PREFIX = 0;
/** Tier of RegularExpression paths and GRPCRoute method matches other than an exact service+method. */
export const TIER_PATTERN = 1;
/** Tier of Exact paths and GRPCRoute matches of an Exact service and method. */
export const TIER_EXACT = 2;

/** A header or query parameter condition: an exact value or an anchored regex. */
export interface ValueCondition {
  /** Header names lower case; query parameter names as given (case-sensitive). */
  readonly name: string;
  readonly exact: string | null;
  readonly regex: RegExp | null;
}

/** How a match ranks (see router.ts for the order) and what it tests. */
export interface MatchKey {
  /** How the path is tested: PATH_EXACT, PATH_PREFIX or PATH_REGEX. */
  readonly pathKind: 0 | 1 | 2;
  /** How the match ranks first: TIER_EXACT, TIER_PATTERN or TIER_PREFIX. */
  readonly tier: 0 | 1 | 2;
  /** Exact: the path. PathPrefix: the prefix without a trailing `/` (so `/` is empty). Regex: a literal every matching path starts with (may be empty). */
  readonly path: string;
  readonly regex: RegExp | null;
  /** Characters that rank the match in its tier: the exact path's or the prefix's length; a gRPC pattern's service; 0 for an HTTPRoute regex. */
  readonly chars: number;
  /** Second rank among equal `chars`: the characters of a gRPC method match (0 otherwise). */
  readonly chars2: number;
  readonly method: string | null;
  readonly headers: readonly ValueCondition[];
  readonly query: readonly ValueCondition[];
}

function valueCondition(name: string, type: 'Exact' | 'RegularExpression', value: string): ValueCondition {
  return Object.freeze(type === 'Exact' ? { name, exact: value, regex: null } : { name, exact: null, regex: compileRouteRegex(value) });
}

const headerConditions = (headers: readonly HeaderMatchConfig[]) => Object.freeze(headers.map((h) => valueCondition(h.name.toLowerCase(), h.type, h.value)));

/** Compiles one HTTPRoute match. */
export function compileHttpMatch(match: HttpRouteMatch): MatchKey {
  const { type, value } = match.path;
  const common = {
    method: match.method ?? null,
    headers: headerConditions(match.headers),
    query: Object.freeze(match.queryParams.map((q) => valueCondition(q.name, q.type, q.value))),
    chars2: 0,
  };
  if (type === 'Exact') return { ...common, pathKind: PATH_EXACT, tier: TIER_EXACT, path: value, regex: null, chars: value.length };
  if (type === 'PathPrefix') {
    const prefix = value.endsWith('/') ? value.slice(0, -1) : value;
    return { ...common, pathKind: PATH_PREFIX, tier: TIER_PREFIX, path: prefix, regex: null, chars: prefix.length };
  }
  // The length of a pattern says nothing of how specific it is: regexes tie on characters.
  return { ...common, pathKind: PATH_REGEX, tier: TIER_PATTERN, path: regexLiteralPrefix(value), regex: compileRouteRegex(value), chars: 0 };
}

/**
 * Compiles one GRPCRoute match into a path match: Exact service and method → exact path
 * `/<service>/<method>` (tier exact); service only → prefix `/<service>`; method only →
 * regex `^/[^/]+/<method>$`; RegularExpression → regex `^/<service>/<method>$` (`[^/]+`
 * for the part not given) — these three in the pattern tier, ranked by the characters of
 * service then method as GRPCRoute precedence says; no method match → every path (tier
 * prefix, like PathPrefix `/`).
 */
export function compileGrpcMatch(match: GrpcRouteMatch): MatchKey {
  const common = { method: null, headers: headerConditions(match.headers), query: Object.freeze([]) };
  const m = match.method;
  if (m === undefined) return { ...common, pathKind: PATH_PREFIX, tier: TIER_PREFIX, path: '', regex: null, chars: 0, chars2: 0 };
  const service = m.service ?? null;
  const method = m.method ?? null;
  if (m.type === 'Exact' && service !== null && method !== null) {
    const path = `/${service}/${method}`;
    return { ...common, pathKind: PATH_EXACT, tier: TIER_EXACT, path, regex: null, chars: path.length, chars2: 0 };
  }
  if (m.type === 'Exact' && service !== null) {
    return { ...common, pathKind: PATH_PREFIX, tier: TIER_PATTERN, path: `/${service}`, regex: null, chars: service.length, chars2: 0 };
  }
  const part = (value: string | null) => (value === null ? '[^/]+' : m.type === 'Exact' ? escapeRegex(value) : `(?:${value})`);
  return {
    ...common,
    pathKind: PATH_REGEX,
    tier: TIER_PATTERN,
    path: '/',
    // The lookahead keeps a pattern such as `.*` within its segment (a service has no /).
    regex: compileRouteRegex(`/(?=[^/]+/[^/]+$)${part(service)}/${part(method)}`),
    chars: service?.length ?? 0,
    chars2: method?.length ?? 0,
  };
}

/** Whether the request path satisfies a prefix or regex match (exact paths are looked up by the router). */
export function pathMatches(key: MatchKey, path: string): boolean {
  if (key.pathKind === PATH_PREFIX) {
    // Segment-wise: `/api` matches `/api` and `/api/x`, not `/apix`.
    const p = key.path;
    return path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 0x2f);
  }
  if (key.pathKind === PATH_EXACT) return path === key.path;
  // The literal prefix first: most requests are told apart without running the regex.
  return path.startsWith(key.path) && key.regex!.test(path);
}

/** Whether method, headers and query parameters match (the path is checked by the caller). */
export function conditionsMatch(key: MatchKey, req: RequestView): boolean {
  if (key.method !== null && req.method !== key.method) return false;
  const headers = key.headers;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    const value = req.header(h.name);
    if (value === undefined) return false;
    if (h.exact !== null ? value !== h.exact : !h.regex!.test(value)) return false;
  }
  const conditions = key.query;
  if (conditions.length > 0) {
    const query = req.query;
    if (query === null) return false;
    for (let i = 0; i < conditions.length; i++) {
      if (!queryMatches(query, conditions[i]!)) return false;
    }
  }
  return true;
}

/**
 * Whether the first parameter named `cond.name` in a raw query string has a matching value.
 * Names and values are compared percent-decoded (`+` as space); a segment without `%` or
 * `+` is compared in place, without a copy.
 */
export function queryMatches(query: string, cond: ValueCondition): boolean {
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    let eq = query.indexOf('=', start);
    if (eq < 0 || eq > end) eq = end;
    if (nameIs(query, start, eq, cond.name)) {
      const from = eq < end ? eq + 1 : end;
      if (cond.exact !== null && !needsDecoding(query, from, end)) {
        return end - from === cond.exact.length && query.startsWith(cond.exact, from);
      }
      const value = decode(query.slice(from, end));
      return value !== null && (cond.exact !== null ? value === cond.exact : cond.regex!.test(value));
    }
    start = end + 1;
  }
  return false;
}

function nameIs(query: string, from: number, to: number, name: string): boolean {
  if (!needsDecoding(query, from, to)) return to - from === name.length && query.startsWith(name, from);
  return decode(query.slice(from, to)) === name;
}

function needsDecoding(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */ || c === 0x2b /* + */) return true;
  }
  return false;
}

/** Percent-decodes a query component (`+` is a space); null when it is not valid UTF-8 escapes. */
function decode(component: string): string | null {
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}
