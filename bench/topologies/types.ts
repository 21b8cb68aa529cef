import type { BenchContext } from '../lib/context.js';

/** The four topologies every scenario compares, in the order runs interleave them. */
export const TOPOLOGY_NAMES = ['direct', 'weft', 'nginx', 'haproxy'] as const;
export type TopologyName = (typeof TOPOLOGY_NAMES)[number];

/** One proxy process of a pair: A is the client side, B the server (mTLS inbound) side. */
export interface ProxyProcess {
  readonly role: 'A' | 'B';
  readonly pid: number;
  readonly name: string;
}

/** A started topology: where the client connects and which processes to measure. */
export interface RunningTopology {
  readonly name: TopologyName;
  /** Plaintext port the load generator connects to (A's listener, or the backend for direct). */
  readonly port: number;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** B's mTLS port (null for direct). */
  readonly inboundPort: number | null;
  /** Proxy processes (empty for direct). */
  readonly proxies: readonly ProxyProcess[];
  /**
   * weft only: mTLS connections B has accepted so far (from its /metrics), to check that A
   * pools and reuses its connections. Absent for the peers.
   */
  inboundConnections?(): Promise<number | null>;
  /** Stops every process of the topology (by PID) and waits for them to exit. */
  stop(): Promise<void>;
}

/** How to start a topology. */
export interface StartOptions {
  /** `http`: an L7 pair (HTTP/1.1 keep-alive both sides); `tcp`: an L4 pair (TLS + byte piping). */
  readonly mode: 'http' | 'tcp';
  /** The plaintext backend B forwards to (the origin, or the bulk sink). */
  readonly backendPort: number;
}

/** Starts one topology; on failure it has already stopped whatever it started. */
export type StartTopology = (ctx: BenchContext, options: StartOptions) => Promise<RunningTopology>;

/** A started proxy process as the pair topologies hold it. */
export interface PairMember {
  readonly pid: number;
  readonly name: string;
  stop(): Promise<unknown>;
}

/** The running form of a proxy pair: the client connects to A on `p1`, A reaches B on `p2`. */
export function runningPair(
  name: TopologyName,
  p1: number,
  p2: number,
  a: PairMember,
  b: PairMember,
  extra: Pick<RunningTopology, 'inboundConnections'> = {},
): RunningTopology {
  return {
    name,
    port: p1,
    url: `http://127.0.0.1:${p1}`,
    inboundPort: p2,
    proxies: [
      { role: 'A', pid: a.pid, name: a.name },
      { role: 'B', pid: b.pid, name: b.name },
    ],
    ...extra,
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
    },
  };
}
