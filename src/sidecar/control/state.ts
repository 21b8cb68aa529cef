import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import { validateCertificateFiles } from '../../pki/certificate-source.js';
import { CERT_FILE_MODE, KEY_FILE_MODE, pathExists, writeFileAtomic } from '../../pki/files.js';
import type { Snapshot } from '../../control/snapshot.js';
import type { ServerTrust } from './server-client.js';

/** What a connected sidecar keeps about the server it enrolled with. */
export interface ServerRecord extends ServerTrust {
  readonly trustDomain: string;
}

/**
 * The state folder of a connected sidecar: its key and certificate (so a restart does
 * not need a new join token), the server it enrolled with, and the last snapshot it
 * applied (its last-known-good configuration, served when the server is unreachable).
 * Files are replaced atomically; the folder and the key are private to the user.
 */
export class SidecarState {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * The saved certificate, if there is one that is valid now and carries `spiffeIdOf`'s
   * identity for the saved trust domain; null otherwise (absent, expired, another
   * service). Throws only for unreadable files.
   */
  async loadIdentity(spiffeIdOf: (trustDomain: string) => string): Promise<{ bundle: CertificateBundle; server: ServerRecord; problem: null } | { bundle: null; server: ServerRecord | null; problem: string | null }> {
    const server = await this.#readJson<ServerRecord>('server.json');
    const paths = { cert: join(this.dir, 'cert.pem'), key: join(this.dir, 'key.pem'), bundle: join(this.dir, 'bundle.pem') };
    if (server === null || !(await pathExists(paths.cert))) return { bundle: null, server, problem: null };
    try {
      const [chainPem, keyPem, bundlePem] = await Promise.all([readFile(paths.cert, 'utf8'), readFile(paths.key, 'utf8'), readFile(paths.bundle, 'utf8')]);
      const bundle = validateCertificateFiles({ chainPem, keyPem, bundlePem, expectedSpiffeId: spiffeIdOf(server.trustDomain), paths });
      return { bundle, server: { ...server, bundlePem }, problem: null };
    } catch (err) {
      return { bundle: null, server, problem: (err as Error).message };
    }
  }

  async saveIdentity(bundle: CertificateBundle, server: ServerRecord): Promise<void> {
    await writeFileAtomic(join(this.dir, 'key.pem'), bundle.keyPem, KEY_FILE_MODE);
    await writeFileAtomic(join(this.dir, 'cert.pem'), bundle.chainPem, CERT_FILE_MODE);
    await writeFileAtomic(join(this.dir, 'bundle.pem'), bundle.bundlePem, CERT_FILE_MODE);
    await writeFileAtomic(join(this.dir, 'server.json'), `${JSON.stringify({ trustDomain: server.trustDomain, serverSpiffeId: server.serverSpiffeId, bundlePem: server.bundlePem }, null, 2)}\n`, CERT_FILE_MODE);
  }

  /** The last snapshot applied, or null. */
  loadSnapshot(): Promise<Snapshot | null> {
    return this.#readJson<Snapshot>('snapshot.json');
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return writeFileAtomic(join(this.dir, 'snapshot.json'), `${JSON.stringify(snapshot)}\n`, CERT_FILE_MODE);
  }

  async #readJson<T>(name: string): Promise<T | null> {
    const path = join(this.dir, name);
    if (!(await pathExists(path))) return null;
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch {
      return null; // half-written by a crash long ago, or edited: treat as absent
    }
  }
}
