import type { Duplex } from 'node:stream';

/**
 * Pipes two byte streams into each other (TCP proxying, upgraded HTTP connections).
 * When either side closes or fails, the other is closed too, so no half-dead pair leaks.
 */
export function joinSockets(a: Duplex, b: Duplex): void {
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.once('close', () => b.destroy());
  b.once('close', () => a.destroy());
  a.pipe(b);
  b.pipe(a);
}
