import type { SidecarConfig, ServerConfig } from '../config/sidecar-schema.js';
import { parseHostPort } from '../config/address.js';
import type { Snapshot } from '../control/snapshot.js';
import { WeftError } from '../errors.js';
import type { Logger } from '../obs/log.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import { WatchedValue } from '../watch.js';
import { Backoff, sleep } from './control/backoff.js';
import { discoverServer, enroll } from './control/enroll.js';
import { effectiveConfig } from './control/effective-config.js';
import { InstanceReporter } from './control/instance-reporter.js';
import { TelemetryReporter } from './control/telemetry-reporter.js';
import { TapClient } from './control/tap-client.js';
import { refusalMessage, ServerClient, ServerUnreachable } from './control/server-client.js';
import { ServerIssuedSource } from './control/server-source.js';
import { SnapshotFollower } from './control/snapshot-follower.js';
import { SidecarState, type ServerRecord } from './control/state.js';
import { Sidecar } from './sidecar.js';

/** How long shutdown waits after deregistering, so callers hear of it before the drain. */
const DEREGISTER_GRACE_MS = 1000;

/** A sidecar following a control plane. */
export interface ConnectedSidecar {
  readonly sidecar: Sidecar;
  /** Deregisters, stops following, drains and stops. */
  shutdown(): Promise<void>;
}

/**
 * Starts a sidecar in connected mode (`server` in its configuration):
 * 1. identity: the certificate in the state folder if it is still valid, else enrollment
 *    with the join token (the server is found by URL and checked against the token's pin);
 * 2. configuration: the snapshot from the server, or the last-known-good one in the state
 *    folder when the server cannot be reached (so a restart while the server is down
 *    serves again at once);
 * 3. then, in the background: renewal, the snapshot long poll, and (with an inbound
 *    listener) registration and health reports.
 * Waits, retrying with backoff, while there is neither a server nor saved state to start
 * from; throws a WeftError for what retrying cannot fix (a refused token, a wrong pin).
 */
export async function startConnectedSidecar(options: { load: () => Promise<SidecarConfig>; log: Logger; signal?: AbortSignal }): Promise<ConnectedSidecar> {
  const { log } = options;
  const local = await options.load();
  const server = local.server!;
  const state = new SidecarState(server.state);
  await state.init();
  const spiffeIdOf = (trustDomain: string) => serviceSpiffeId(trustDomain, local.namespace, local.service);

  const { bundle: initial, record } = await obtainIdentity({ server, state, spiffeIdOf, local, log, signal: options.signal });
  const client = new ServerClient({ urls: server.urls, trust: record, identity: () => source.get() });
  const source: ServerIssuedSource = new ServerIssuedSource({
    initial,
    client,
    log,
    persist: async (bundle) => {
      client.setTrust({ bundlePem: bundle.bundlePem, serverSpiffeId: record.serverSpiffeId });
      await state.saveIdentity(bundle, { ...record, bundlePem: bundle.bundlePem });
    },
  });
  await source.start();

  const snapshot = new WatchedValue<Snapshot>(await firstSnapshot({ client, state, log, signal: options.signal }));
  let follower: SnapshotFollower | null = null;
  let sidecar: Sidecar;
  try {
    sidecar = await Sidecar.start({
      load: async () => effectiveConfig(await options.load(), snapshot.get()),
      log,
      identity: { source, trustDomain: record.trustDomain, spiffeId: spiffeIdOf(record.trustDomain) },
      controlPlane: () => follower?.status() ?? null,
    });
  } catch (err) {
    source.stop();
    client.close();
    throw err;
  }
  await state.saveSnapshot(snapshot.get());

  follower = new SnapshotFollower({
    client,
    log,
    current: snapshot.get(),
    apply: async (next) => {
      const previous = snapshot.get();
      snapshot.set(next);
      const result = await sidecar.reload();
      if (result.applied) {
        log.info({ snapshot: next.hash }, 'snapshot applied');
        await state.saveSnapshot(next);
      } else {
        snapshot.set(previous); // the old one keeps serving; the server's next change is tried again
        throw new Error(`snapshot ${next.hash} rejected: ${result.error.message}`);
      }
    },
  });
  follower.start();

  let reporter: InstanceReporter | null = null;
  if (local.inbound !== undefined) {
    const inbound = local.inbound;
    reporter = new InstanceReporter({
      client,
      log,
      app: inbound.app,
      port: () => {
        const bound = sidecar.addresses().listeners['inbound'];
        const parsed = bound === undefined ? null : parseHostPort(bound);
        return parsed !== null && typeof parsed !== 'string' ? parsed.port : inbound.listen.port;
      },
      ...(server.advertise !== undefined ? { advertise: server.advertise } : isWildcard(inbound.listen.host) ? {} : { advertise: inbound.listen.host }),
      metadata: server.metadata,
      healthCheck: () => snapshot.get().inbound.healthCheck,
      callers: sidecar.callerTally(),
    });
    reporter.start();
  }
  const instanceReporter = reporter;
  const telemetry = new TelemetryReporter({ client, metrics: sidecar.observer.metrics, log, instance: () => instanceReporter?.id ?? null, certificate: () => source.get() });
  telemetry.start();
  const tap = new TapClient({ client, log });
  sidecar.observer.tap = tap;
  tap.start();
  log.info({ server: client.url, snapshot: snapshot.get().hash, spiffeId: initial.spiffeId }, 'connected mode: following the server');

  return {
    sidecar,
    async shutdown() {
      if (reporter !== null) {
        await reporter.stop();
        await sleep(DEREGISTER_GRACE_MS);
      }
      await follower.stop();
      await tap.stop();
      await sidecar.shutdown();
      await telemetry.stop(); // after the drain: the last requests are in it
      source.stop();
      client.close();
    },
  };
}

/** The saved certificate, or a new one from enrollment (retrying while the server is unreachable). */
async function obtainIdentity(options: {
  server: ServerConfig;
  state: SidecarState;
  spiffeIdOf: (trustDomain: string) => string;
  local: SidecarConfig;
  log: Logger;
  signal: AbortSignal | undefined;
}) {
  const { server, state, log } = options;
  const saved = await state.loadIdentity(options.spiffeIdOf);
  if (saved.bundle !== null) {
    log.info({ state: state.dir, serial: saved.bundle.serial, notAfter: saved.bundle.notAfter.toISOString() }, 'using the certificate in the state folder');
    return { bundle: saved.bundle, record: saved.server };
  }
  if (server.token === undefined) {
    const why = saved.problem !== null ? `the certificate in ${state.dir} cannot be used (${saved.problem})` : `there is no certificate in ${state.dir} yet`;
    throw new WeftError('WEFT_E_ENROLL', `${why}: give a join token (--token or WEFT_TOKEN; \`weft token create --service ${options.local.service}\`)`);
  }
  const token = server.token;
  const record: ServerRecord = await retryWhileUnreachable(log, options.signal, 'enroll', () => discoverServer(server.urls, token));
  const bundle = await retryWhileUnreachable(log, options.signal, 'enroll', () =>
    enroll({ urls: server.urls, token, server: record, service: options.local.service, namespace: options.local.namespace }),
  );
  // From here on the server is trusted by the bundle its authenticated answer carried.
  const trusted: ServerRecord = { ...record, bundlePem: bundle.bundlePem };
  await state.saveIdentity(bundle, trusted);
  log.info({ spiffeId: bundle.spiffeId, serial: bundle.serial, notAfter: bundle.notAfter.toISOString() }, 'enrolled with the server');
  return { bundle, record: trusted };
}

/** The server's snapshot now, else the saved one, else wait for the server. */
async function firstSnapshot(options: { client: ServerClient; state: SidecarState; log: Logger; signal: AbortSignal | undefined }): Promise<Snapshot> {
  const fetchOnce = async (): Promise<Snapshot> => {
    const answer = await options.client.call('GET', '/v1/snapshot', { timeoutMs: 5000 });
    if (answer.status !== 200 || answer.json === null) throw new WeftError('WEFT_E_SNAPSHOT', `the server refused the snapshot: ${refusalMessage(answer)}`);
    return answer.json as unknown as Snapshot;
  };
  try {
    return await fetchOnce();
  } catch (err) {
    if (!(err instanceof ServerUnreachable)) throw err;
    const saved = await options.state.loadSnapshot();
    if (saved !== null) {
      options.log.warn({ error: err.message, snapshot: saved.hash }, 'the server is unreachable; serving the last-known-good snapshot from the state folder');
      return saved;
    }
    return retryWhileUnreachable(options.log, options.signal, 'fetch a first snapshot', fetchOnce);
  }
}

/** Calls `fn` until it does not throw ServerUnreachable (backoff with jitter); other errors are thrown. */
async function retryWhileUnreachable<T>(log: Logger, signal: AbortSignal | undefined, what: string, fn: () => Promise<T>): Promise<T> {
  const backoff = new Backoff();
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ServerUnreachable)) throw err;
      if (signal?.aborted) throw new WeftError('WEFT_E_STOPPED', `stopped while waiting for the server to ${what}`);
      const delay = backoff.next();
      log.warn({ error: err.message, retryInMs: delay }, `waiting for the server to ${what}`);
      await sleep(delay, signal);
    }
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

