import type { BackendRefConfig } from '../../config/route-schema.js';
import { compileBackends } from './rule.js';
import type { RouteCompileOptions, TcpRouteInput } from './router.js';
import type { BackendPicker } from './types.js';

/**
 * Compiles the TCPRoutes attached to one service into the picker of each new connection,
 * or null when none is attached (connections go to the service itself). A connection has
 * nothing to match on, so one route decides: the oldest (`createdOrder`), then the first
 * by `<namespace>/<name>`; the others are ignored. Its backendRefs are drawn by weight;
 * `pick()` returns null for the share of an unresolved backendRef (or always, when no
 * weight is on a resolved one): the pipeline then closes the connection.
 */
export function compileTcpRoutes<B>(routes: readonly TcpRouteInput[], resolve: (ref: BackendRefConfig) => B | null, options: RouteCompileOptions = {}): BackendPicker<B> | null {
  if (routes.length === 0) return null;
  const winner = [...routes].sort((a, b) => a.createdOrder - b.createdOrder || compareKeys(a, b))[0]!;
  const refs = winner.rules.flatMap((rule) => rule.backendRefs);
  return compileBackends(refs, { namespace: winner.namespace, resolve, random: options.random });
}

function compareKeys(a: TcpRouteInput, b: TcpRouteInput): number {
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
