import type { BenchContext } from '../lib/context.js';
import type { RunningTopology, StartOptions } from './types.js';

/** direct: the client talks to the backend itself (no proxy, no TLS): the baseline. */
export async function startDirect(_ctx: BenchContext, options: StartOptions): Promise<RunningTopology> {
  return {
    name: 'direct',
    port: options.backendPort,
    url: `http://127.0.0.1:${options.backendPort}`,
    inboundPort: null,
    proxies: [],
    stop: async () => {},
  };
}
