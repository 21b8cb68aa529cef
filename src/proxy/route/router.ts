import type { BackendRefConfig, GrpcRouteRule, HttpRouteRule, StaticRoute, TcpRouteRule } from '../../config/route-schema.js';
import { compileGrpcMatch, compileHttpMatch, conditionsMatch, pathMatches, TIER_EXACT, type MatchKey } from './match.js';
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
  /** Random numbers in [0, 1) for weighted picking (tests inject a seeded one). */
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
  const random = options.random ?? Math.random;
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
  return new Table(exact, rest);
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
  /** Pattern and prefix matches, in precedence order. */
  readonly #rest: readonly Entry<B>[];

  constructor(exact: ReadonlyMap<string, readonly Entry<B>[]>, rest: readonly Entry<B>[]) {
    this.#exact = exact;
    this.#rest = rest;
  }

  match(req: RequestView): CompiledRule<B> | null {
    const path = req.path;
    if (this.#exact.size > 0) {
      const list = this.#exact.get(path);
      if (list !== undefined) {
        for (const e of list) if (conditionsMatch(e, req)) return e.rule;
      }
    }
    for (const e of this.#rest) {
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
