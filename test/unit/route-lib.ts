import { validateConfig } from '../../src/config/load.js';
import { grpcRouteSpec, httpRouteSpec, tcpRouteSpec, type BackendRefConfig } from '../../src/config/route-schema.js';
import { compileRouter, type RouteCompileOptions, type RouteInput, type TcpRouteInput } from '../../src/proxy/route/router.js';
import type { RequestView, Router } from '../../src/proxy/route/types.js';

/** Helpers shared by the route-*.test.ts files. */

/** A request view of `target` (path and query), with lower-case header names. */
export function view(target: string, options: { method?: string; headers?: Record<string, string> } = {}): RequestView {
  const q = target.indexOf('?');
  const headers = options.headers ?? {};
  return {
    method: options.method ?? 'GET',
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? null : target.slice(q + 1),
    header: (name) => headers[name],
  };
}

/** A route as tests write it: rules in the resource form (validated here). */
export interface TestRoute {
  kind?: 'HTTPRoute' | 'GRPCRoute';
  name: string;
  namespace?: string;
  createdOrder?: number;
  rules: unknown[];
}

/** Validates the rules like a resource, then gives the compiler input. */
export function input(route: TestRoute, index = 0): RouteInput {
  const common = { namespace: route.namespace ?? 'default', name: route.name, createdOrder: route.createdOrder ?? index };
  const parentRefs = [{ name: 'api' }];
  if (route.kind === 'GRPCRoute') return { ...common, kind: 'GRPCRoute', rules: validateConfig(grpcRouteSpec, { parentRefs, rules: route.rules }).rules };
  return { ...common, kind: 'HTTPRoute', rules: validateConfig(httpRouteSpec, { parentRefs, rules: route.rules }).rules };
}

/** A validated TCPRoute as compiler input. */
export function tcpInput(name: string, rules: unknown[], createdOrder = 0, namespace = 'default'): TcpRouteInput {
  return { namespace, name, createdOrder, rules: validateConfig(tcpRouteSpec, { parentRefs: [{ name: 'db' }], rules }).rules };
}

/** Backends are the string `namespace/name[subset]`; refs named `missing…` do not resolve. */
export function resolveName(ref: BackendRefConfig): string | null {
  if (ref.name.startsWith('missing')) return null;
  const subset = ref.subset === undefined ? '' : `[${Object.entries(ref.subset).map(([k, v]) => `${k}=${v}`).join(',')}]`;
  return `${ref.namespace}/${ref.name}${subset}`;
}

/** Compiles test routes (createdOrder: their index unless given). */
export function router(routes: TestRoute[], options: RouteCompileOptions = {}): Router<string> {
  return compileRouter(routes.map(input), resolveName, options);
}

/** The name of the rule a request gets, or null. */
export function hit(r: Router<string>, target: string, options: { method?: string; headers?: Record<string, string> } = {}): string | null {
  return r.match(view(target, options))?.name ?? null;
}

/** A seeded PRNG (mulberry32): numbers in [0, 1). */
export { seeded } from './resilience-random.js';
