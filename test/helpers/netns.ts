import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { requireOrSkip } from './require.js';

const run = promisify(execFile);

/** One test host: a network namespace with an address on the shared link. */
export interface Host {
  readonly ns: string;
  readonly ip: string;
  readonly dev: string;
  /** Prefix for spawn: `ip netns exec NS`. */
  readonly exec: string[];
}

/**
 * Why namespaces cannot be used here, or null when they can. Under CI=true a test must
 * fail instead of skipping (../shared/netns.md).
 */
export async function netnsUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    await run('ip', ['-V']);
  } catch {
    return 'iproute2 (ip) is not installed';
  }
  return null;
}

/** Skips the test (or fails it under CI) when namespaces are unavailable; true if it may go on. */
export async function requireNetns(t: TestContext): Promise<boolean> {
  return requireOrSkip(t, 'network namespaces are', await netnsUnavailable());
}

/**
 * Creates two hosts joined by a veth pair: a = 198.18.0.1, b = 198.18.0.2 (RFC 2544
 * benchmarking range), each with loopback up. Everything is removed after the test,
 * also when it fails (clean-up is registered before set-up).
 */
export async function twoHosts(t: TestContext): Promise<{ a: Host; b: Host }> {
  const id = randomBytes(3).toString('hex');
  const nsA = `weft-${id}-a`;
  const nsB = `weft-${id}-b`;
  const devA = `wa-${id}`;
  const devB = `wb-${id}`;
  t.after(async () => {
    await run('ip', ['netns', 'del', nsA]).catch(() => {});
    await run('ip', ['netns', 'del', nsB]).catch(() => {});
  });
  await run('ip', ['netns', 'add', nsA]);
  await run('ip', ['netns', 'add', nsB]);
  await run('ip', ['link', 'add', devA, 'type', 'veth', 'peer', 'name', devB]);
  await run('ip', ['link', 'set', devA, 'netns', nsA]);
  await run('ip', ['link', 'set', devB, 'netns', nsB]);
  for (const [ns, dev, ip] of [[nsA, devA, '198.18.0.1'], [nsB, devB, '198.18.0.2']] as const) {
    await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
    await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const host = (ns: string, ip: string, dev: string): Host => ({ ns, ip, dev, exec: ['ip', 'netns', 'exec', ns] });
  return { a: host(nsA, '198.18.0.1', devA), b: host(nsB, '198.18.0.2', devB) };
}

/** Runs a command inside a host to completion. */
export async function inHost(host: Host, cmd: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return run('ip', ['netns', 'exec', host.ns, cmd, ...args], { timeout: options.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 });
}

/** Starts a long-running command inside a host; it is killed (by PID) after the test. */
export function spawnInHost(t: TestContext, host: Host, cmd: string, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  return child;
}

/**
 * Captures packets on `host`'s link device into a pcap file while `during` runs, then
 * returns the capture decoded as ASCII (tcpdump -A).
 */
export async function capture(t: TestContext, host: Host, file: string, filter: string, during: () => Promise<void>): Promise<string> {
  const tcpdump = spawnInHost(t, host, 'tcpdump', ['-i', host.dev, '--immediate-mode', '-U', '-w', file, filter]);
  let err = '';
  tcpdump.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // tcpdump prints "listening on ..." once the capture is armed.
  const deadline = Date.now() + 10_000;
  while (!err.includes('listening on') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!err.includes('listening on')) throw new Error(`tcpdump did not start: ${err}`);
  await during();
  await new Promise((r) => setTimeout(r, 300));
  tcpdump.kill('SIGINT');
  await new Promise((r) => tcpdump.once('exit', r));
  const { stdout } = await run('tcpdump', ['-r', file, '-A', '-nn'], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Packets on `port` between the two test hosts in a `tcpdump -A -nn` text, counted by their header lines. */
export function packetsBetweenHosts(text: string, port: number): number {
  const re = /198\.18\.0\.[12]\.\d+ > 198\.18\.0\.[12]\.\d+/g;
  return (text.match(re) ?? []).filter((l) => l.includes(`.${port}`)).length;
}

/** A unique string to look for in captures: it must never appear on an encrypted link. */
export function marker(kind: string): string {
  return `WEFT${kind}MARK${randomBytes(8).toString('hex')}`;
}

/**
 * Creates `n` hosts (198.18.0.1 … 198.18.0.n) on one switched link: a bridge in its own
 * namespace, and a veth pair from each host to it. Everything is removed after the test.
 */
export async function hosts(t: TestContext, n: number): Promise<Host[]> {
  const id = randomBytes(3).toString('hex');
  const bridgeNs = `weft-${id}-br`;
  const names = Array.from({ length: n }, (_, i) => ({ ns: `weft-${id}-h${i + 1}`, dev: `w${id}h${i + 1}`, peer: `w${id}p${i + 1}`, ip: `198.18.0.${i + 1}` }));
  t.after(async () => {
    for (const h of names) await run('ip', ['netns', 'del', h.ns]).catch(() => {});
    await run('ip', ['netns', 'del', bridgeNs]).catch(() => {});
  });
  await run('ip', ['netns', 'add', bridgeNs]);
  await run('ip', ['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
  await run('ip', ['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
  for (const h of names) {
    await run('ip', ['netns', 'add', h.ns]);
    await run('ip', ['link', 'add', h.dev, 'type', 'veth', 'peer', 'name', h.peer]);
    await run('ip', ['link', 'set', h.dev, 'netns', h.ns]);
    await run('ip', ['link', 'set', h.peer, 'netns', bridgeNs]);
    await run('ip', ['-n', bridgeNs, 'link', 'set', h.peer, 'master', 'br0']);
    await run('ip', ['-n', bridgeNs, 'link', 'set', h.peer, 'up']);
    await run('ip', ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.dev]);
    await run('ip', ['-n', h.ns, 'link', 'set', h.dev, 'up']);
    await run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up']);
  }
  return names.map((h) => ({ ns: h.ns, ip: h.ip, dev: h.dev, exec: ['ip', 'netns', 'exec', h.ns] }));
}
