import { request } from 'node:http';
import { connect } from 'node:net';
import type { HostPort } from '../../config/address.js';
import type { HealthCheckSpec } from '../../control/resources.js';

/** The outcome of one check of the local app. */
export interface AppHealth {
  readonly healthy: boolean;
  /** Why not, in words for `weft services`. */
  readonly reason: string | null;
}

/**
 * Checks the local app once: `GET path` answered with 2xx or 3xx (http), or a TCP connect
 * (tcp, and the default when the service declares no check), within the timeout.
 */
export function checkApp(app: HostPort, spec: HealthCheckSpec | null, timeoutMs: number): Promise<AppHealth> {
  return spec?.http !== undefined ? httpCheck(app, spec.http.path, timeoutMs) : tcpCheck(app, timeoutMs);
}

function httpCheck(app: HostPort, path: string, timeoutMs: number): Promise<AppHealth> {
  return new Promise((resolve) => {
    const req = request({ host: app.host, port: app.port, path, method: 'GET', agent: false, headers: { 'user-agent': 'weft-health-check', connection: 'close' } }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      done(code >= 200 && code < 400 ? { healthy: true, reason: null } : { healthy: false, reason: `GET ${path} answered ${code}` });
    });
    const timer = setTimeout(() => {
      done({ healthy: false, reason: `GET ${path} did not answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err) => done({ healthy: false, reason: `GET ${path}: ${err.message}` }));
    req.end();
    let settled = false;
    function done(result: AppHealth) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    }
  });
}

function tcpCheck(app: HostPort, timeoutMs: number): Promise<AppHealth> {
  return new Promise((resolve) => {
    const socket = connect({ host: app.host, port: app.port });
    const timer = setTimeout(() => done({ healthy: false, reason: `no TCP connection to the app within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ healthy: true, reason: null }));
    socket.once('error', (err) => done({ healthy: false, reason: `cannot connect to the app: ${err.message}` }));
    let settled = false;
    function done(result: AppHealth) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
  });
}
