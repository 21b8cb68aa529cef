import { createServer, type AddressInfo } from 'node:net';

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (bound to port 0, then released). Never returns the same port
 * twice in one run, so topologies started side by side cannot collide with each other.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found in 50 attempts');
}
