import type { BackendRefConfig, GrpcRouteRule, HttpRouteRule, StaticRoute, TcpRouteRule } from '../../config/route-schema.js';
import { compileGrpcMatch, compileHttpMatch, conditionsMatch, pathMatches, PATH_PREFIX, TIER_EXACT, type MatchKey } from './match.js';
import { compileGrpcRule, compileHttpRule } from './rule.js';
import type { CompiledRule, RequestView, Router } from './types.js';

/**
 * The route table of one service: every attached HTTPRoute and GRPCRoute, merged into one
 * ordered list of matches, compiled once per configuration. A request takes the rule of
 * the first match it satisfies in this order (continuing on ties):
 *
 * 1. the tier of the path:
 *    - exact: HTTPRoute `Exact` paths, GRPCRoute matches of an Exact service and method;
 *    - pattern: HTTPRoute `RegularExpression` paths, and the other GRPCRoute method matches
 *      (service only, method only, RegularExpression);
 *    - prefix: HTTPRoute `PathPrefix` paths, GRPCRoute matches without a method.
 *    The Gateway API puts Exact before PathPrefix and leaves regexes to implementations;
 *    weft tries them before prefixes, as Envoy Gateway, Contour, NGINX and kgateway do:
 *    a prefix (`/` above all, the default of a rule without matches) is the catch-all, and
 *    ranked above the regexes it would leave them unreachable;
 * 2. characters, within the tier: the longest exact path or prefix first (a prefix's
 *    trailing `/` not counted); among patterns, GRPCRoute's order: more characters of
 *    service, then of method (an HTTPRoute regex counts none: a pattern's length says
 *    nothing of how specific it is);
 * 3. a method match (HTTPRoute) before none;
 * 4. more header matches first;
 * 5. more query parameter matches first;
 * 6. the older route (`createdOrder`), then `<namespace>/<name>` alphabetically (then
 *    GRPCRoute before HTTPRoute, for a name both kinds use);
 * 7. the earlier rule in its route, then the earlier match in its rule.
 *
 * Between GRPCRoute matches this is the GRPCRoute order (service, method, headers, routes,
 * rules) except that an exact service+method always comes first. The Gateway API does not
 * merge HTTPRoutes and GRPCRoutes; weft does, so that one service can take both.
 */

/** The attached routes of one kind, as the compiler takes them. */
interface RouteCommon {
  readonly namespace: string;
  readonly name: string;
  /** Creation order (older first): the first tiebreak between routes. */
  readonly createdOrder: number;
}

/** An HTTPRoute or GRPCRoute attached to the service, with its validated rules. */
export type RouteInput =
  | (RouteCommon & { readonly kind: 'HTTPRoute'; readonly rules: readonly HttpRouteRule[] })
  | (RouteCommon & { readonly kind: 'GRPCRoute'; readonly rules: readonly GrpcRouteRule[] });

/** A TCPRoute attached to the service. */
export type TcpRouteInput = RouteCommon & { readonly rules: readonly TcpRouteRule[] };

/** Options of the compilers. */
export interface RouteCompileOptions {
  /** Random numbers in [0, 1) for weighted picking (tests inject a seeded one); default: a built-in generator. */
  readonly random?: () => number;
}

interface Entry<B> extends MatchKey {
  readonly rule: CompiledRule<B>;
  readonly createdOrder: number;
  readonly routeKey: string;
  readonly kind: string;
  readonly ruleIndex: number;
  readonly matchIndex: number;
}

/**
 * Compiles the routes attached to one service into a Router. `resolve` turns a backendRef
 * (its namespace filled in with the route's when absent) into a backend, or null when it
 * names nothing usable: that share of the rule's requests then gets a 500 (picker.ts).
 * It is called once per backendRef here, never per request.
 */
export function compileRouter<B>(routes: readonly RouteInput[], resolve: (ref: BackendRefConfig) => B | null, options: RouteCompileOptions = {}): Router<B> {
  const random = options.random;
  const entries: Entry<B>[] = [];
  for (const route of routes) {
    const routeKey = `${route.namespace}/${route.name}`;
    route.rules.forEach((rule, ruleIndex) => {
      const ctx = { namespace: route.namespace, name: `${routeKey}/${rule.name ?? ruleIndex}`, resolve, random };
      const keys = route.kind === 'HTTPRoute' ? (rule as HttpRouteRule).matches.map(compileHttpMatch) : (rule as GrpcRouteRule).matches.map(compileGrpcMatch);
      const compiled = route.kind === 'HTTPRoute' ? compileHttpRule(rule as HttpRouteRule, ctx) : compileGrpcRule(rule as GrpcRouteRule, ctx);
      keys.forEach((key, matchIndex) => {
        entries.push({ ...key, rule: compiled, createdOrder: route.createdOrder, routeKey, kind: route.kind, ruleIndex, matchIndex });
      });
    });
  }
  entries.sort(compareEntries);
  const exact = new Map<string, Entry<B>[]>();
  const rest: Entry<B>[] = [];
  for (const e of entries) {
    if (e.tier !== TIER_EXACT) rest.push(e);
    else if (exact.has(e.path)) exact.get(e.path)!.push(e);
    else exact.set(e.path, [e]);
  }
  return new Table(exact, indexBySegment(rest));
}

/**
 * The pattern and prefix matches, bucketed by the first path segment they require (when
 * their literal start pins it down: `/api/...` requires `api`), under a hash of that
 * segment; a match that requires none is in every bucket. Each bucket keeps the precedence
 * order, so a request scans only the matches that can take its first segment. Hash
 * collisions only put more matches in a bucket: each is still tested.
 */
function indexBySegment<B>(rest: readonly Entry<B>[]): SegmentIndex<B> {
  const buckets = new Map<number, Entry<B>[]>();
  const any: Entry<B>[] = [];
  // In precedence order: a bucket starts with the any-segment matches seen so far.
  for (const e of rest) {
    const hash = requiredSegmentHash(e);
    if (hash === null) {
      any.push(e);
      for (const bucket of buckets.values()) bucket.push(e);
    } else {
      const bucket = buckets.get(hash);
      if (bucket === undefined) buckets.set(hash, [...any, e]);
      else bucket.push(e);
    }
  }
  return { buckets, any };
}

interface SegmentIndex<B> {
  readonly buckets: ReadonlyMap<number, readonly Entry<B>[]>;
  /** The matches that require no particular first segment (the bucket of any other segment). */
  readonly any: readonly Entry<B>[];
}

/** Hash of the first segment every path the match takes must have, or null when it can be anything. */
function requiredSegmentHash(e: MatchKey): number | null {
  const literal = e.path;
  if (literal.length < 2 || literal.charCodeAt(0) !== 0x2f) return null;
  const slash = literal.indexOf('/', 1);
  // A prefix match ends on a segment boundary; a regex's literal start only up to its next `/`.
  if (slash < 0 && e.pathKind !== PATH_PREFIX) return null;
  return segmentHash(literal, slash < 0 ? literal.length : slash);
}

/**
 * FNV-1a of `path` from index 1 up to `end` (its first segment), kept within 30 bits so
 * that it is a small integer (no heap number is allocated per request).
 */
function segmentHash(path: string, end: number): number {
  let h = 0x811c9dc5;
  for (let i = 1; i < end; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/** End of the first segment of a request path: the second `/`, else the length. */
function firstSegmentEnd(path: string): number {
  for (let i = 1; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) return i;
  return path.length;
}

/** The precedence order above, as a sort comparator (negative: `a` first). */
function compareEntries(a: Entry<unknown>, b: Entry<unknown>): number {
  return (
    b.tier - a.tier ||
    b.chars - a.chars ||
    b.chars2 - a.chars2 ||
    Number(b.method !== null) - Number(a.method !== null) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length ||
    a.createdOrder - b.createdOrder ||
    compareStrings(a.routeKey, b.routeKey) ||
    compareStrings(a.kind, b.kind) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class Table<B> implements Router<B> {
  /** Exact paths: an exact match outranks every other kind, so they are looked up first. */
  readonly #exact: ReadonlyMap<string, readonly Entry<B>[]>;
  /** Pattern and prefix matches, in precedence order, by first segment. */
  readonly #rest: SegmentIndex<B>;

  constructor(exact: ReadonlyMap<string, readonly Entry<B>[]>, rest: SegmentIndex<B>) {
    this.#exact = exact;
    this.#rest = rest;
  }

  match(req: RequestView): CompiledRule<B> | null {
    const path = req.path;
    if (this.#exact.size > 0) {
      const list = this.#exact.get(path);
      if (list !== undefined) {
        for (let i = 0; i < list.length; i++) if (conditionsMatch(list[i]!, req)) return list[i]!.rule;
      }
    }
    const rest = this.#rest;
    const list = rest.buckets.size === 0 ? rest.any : (rest.buckets.get(segmentHash(path, firstSegmentEnd(path))) ?? rest.any);
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (pathMatches(e, path) && conditionsMatch(e, req)) return e.rule;
    }
    return null;
  }
}

/**
 * The static routes of one upstream (`upstreams[].routes`) as compiler input, in the
 * upstream's namespace; their order in the file is their creation order.
 */
export function staticRouteInputs(routes: readonly StaticRoute[], namespace: string): { http: RouteInput[]; tcp: TcpRouteInput[] } {
  const http: RouteInput[] = [];
  const tcp: TcpRouteInput[] = [];
  routes.forEach((r, createdOrder) => {
    const common = { namespace, name: r.name, createdOrder };
    if (r.kind === 'TCPRoute') tcp.push({ ...common, rules: r.rules });
    else if (r.kind === 'HTTPRoute') http.push({ ...common, kind: 'HTTPRoute', rules: r.rules });
    else http.push({ ...common, kind: 'GRPCRoute', rules: r.rules });
  });
  return { http, tcp };
}
