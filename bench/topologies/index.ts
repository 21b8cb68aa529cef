import type { BenchContext } from '../lib/context.js';
import { startDirect } from './direct.js';
import { startHaproxy } from './haproxy.js';
import { startNginx } from './nginx.js';
import { TOPOLOGY_NAMES, type RunningTopology, type StartOptions, type StartTopology, type TopologyName } from './types.js';
import { startWeft } from './weft.js';

/** How to start each topology. */
export const STARTERS: Readonly<Record<TopologyName, StartTopology>> = {
  direct: startDirect,
  weft: startWeft,
  nginx: startNginx,
  haproxy: startHaproxy,
};

/**
 * Starts every topology side by side (each on its own ports) and returns them in the
 * interleaving order. When one fails, the others are stopped and the error is rethrown.
 */
export async function startAll(ctx: BenchContext, options: StartOptions): Promise<RunningTopology[]> {
  const settled = await Promise.allSettled(TOPOLOGY_NAMES.map((name) => STARTERS[name](ctx, options)));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${TOPOLOGY_NAMES[i]}: ${(s.reason as Error).message}`] : []));
  if (failed.length > 0) {
    await stopAll(started);
    throw new Error(`cannot start the ${options.mode} topologies:\n  ${failed.join('\n  ')}`);
  }
  return started;
}

/** Stops topologies (by PID), ignoring errors. */
export async function stopAll(topologies: readonly RunningTopology[]): Promise<void> {
  await Promise.allSettled(topologies.map((t) => t.stop()));
}
