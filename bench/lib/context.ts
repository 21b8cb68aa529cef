import type { BenchCerts } from './certs.js';
import type { MachineInfo, Pinning } from './env.js';

/** Everything a topology or scenario needs from the runner. */
export interface BenchContext {
  /** The weft checkout. */
  readonly repoDir: string;
  /** `dist/src/cli/main.js` of the weft build under test (a snapshot taken at start). */
  readonly weftMain: string;
  /** Scratch folder for certificates, configs and nginx temp paths (removed at the end). */
  readonly work: string;
  /** Results folder; process logs go to `outDir/logs`, peer configs to `outDir/conf`. */
  readonly outDir: string;
  readonly certs: BenchCerts;
  readonly pin: Pinning;
  readonly env: MachineInfo;
  readonly quick: boolean;
  /** Measured repetitions of each topology (interleaved). */
  readonly runs: number;
  /** Duration of one measured run in seconds (wrk and the open-loop generator). */
  readonly durationS: number;
  /** Warm-up before the first measured run, in seconds (0 = none). */
  readonly warmupS: number;
  /** Bytes carried by one bulk stream. */
  readonly bulkBytes: number;
  /** The shared origin: plaintext nginx answering /small and /1k. */
  readonly origin: { readonly port: number; readonly pid: number };
  /** A unique name for a log or config file of `kind`. */
  uniqueName(kind: string): string;
  /** Progress line on stderr. */
  log(message: string): void;
}

/** Converts clock ticks (from /proc) to microseconds. */
export function ticksToUs(ctx: BenchContext, ticks: number): number {
  return (ticks * 1e6) / ctx.env.clkTck;
}
