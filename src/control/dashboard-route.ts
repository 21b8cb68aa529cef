import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';

/**
 * The dashboard's static files, served by `weft server` without a token (they hold no data:
 * the browser code calls the API with the admin token the user gives it). The files are
 * `src/dashboard/` copied to `dist/src/dashboard/` by the build; both `dist/src/cli/` (the
 * bundle) and `dist/src/control/` (tsc output) are one level below it.
 */
const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));

const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' } as const;

/** The dashboard's own files: nothing else under /ui/ is served (no path is ever joined from the URL). */
const FILES: Readonly<Record<string, keyof typeof TYPES>> = {
  'index.html': 'html',
  'app.js': 'js',
  'api.js': 'js',
  'graph.js': 'js',
  'pages.js': 'js',
  'format.js': 'js',
  'html.js': 'js',
  'style.css': 'css',
};

/** The browser builds of Preact, its hooks and htm, found next to the installed packages' CommonJS entry points. */
const VENDOR: Readonly<Record<string, { readonly specifier: string; readonly file: string }>> = {
  'preact.module.js': { specifier: 'preact', file: 'preact.module.js' },
  'hooks.module.js': { specifier: 'preact/hooks', file: 'hooks.module.js' },
  'htm.module.js': { specifier: 'htm', file: 'htm.module.js' },
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

const cache = new Map<string, Promise<Asset>>();
/** The hash of index.html's inline import map, allowed by the CSP (set once index.html was read). */
let importMapHash: string | null = null;

function load(name: string): Promise<Asset> {
  let asset = cache.get(name);
  if (asset === undefined) {
    asset = read(name);
    cache.set(name, asset);
    asset.catch(() => cache.delete(name)); // a missing file is tried again next time
  }
  return asset;
}

async function read(name: string): Promise<Asset> {
  if (name.startsWith('vendor/')) {
    const vendor = VENDOR[name.slice('vendor/'.length)]!;
    const entry = createRequire(import.meta.url).resolve(vendor.specifier);
    return { body: await readFile(join(dirname(entry), vendor.file)), type: TYPES.js };
  }
  const kind = FILES[name]!;
  const body = await readFile(join(DASHBOARD_DIR, name));
  if (name === 'index.html') {
    const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(body.toString('utf8'));
    if (map === null) throw new WeftError('WEFT_E_DASHBOARD', `${join(DASHBOARD_DIR, name)} has no inline import map`);
    importMapHash = `'sha256-${createHash('sha256').update(map[1]!).digest('base64')}'`;
  }
  return { body, type: TYPES[kind] };
}

/** Self only; the one inline script is the import map, allowed by its hash. */
function contentSecurityPolicy(): string {
  return [
    "default-src 'none'",
    `script-src 'self'${importMapHash === null ? '' : ` ${importMapHash}`}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Which asset a path names: `/ui/` is index.html; null when the path is not the dashboard's. */
function assetName(path: string): string | null | undefined {
  if (path === '/ui/') return 'index.html';
  if (!path.startsWith('/ui/')) return undefined;
  const name = path.slice('/ui/'.length);
  if (Object.hasOwn(FILES, name)) return name;
  if (name.startsWith('vendor/') && Object.hasOwn(VENDOR, name.slice('vendor/'.length))) return name;
  return null;
}

/**
 * Serves the dashboard: `GET /` and `GET /ui` redirect to `/ui/`; `GET|HEAD /ui/` and
 * `/ui/FILE` answer the dashboard's files (an allow-list), `/ui/vendor/preact.module.js`,
 * `hooks.module.js` and `htm.module.js` the installed packages' browser builds (read once,
 * cached). Returns false when the path is not the dashboard's (the API handles it).
 */
export async function dashboardRoute(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  if (path !== '/' && path !== '/ui' && !path.startsWith('/ui/')) return false;
  const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end(`${req.method ?? ''} is not allowed on ${path} (GET)\n`);
    return true;
  }
  if (path === '/' || path === '/ui') {
    res.writeHead(302, { ...headers, location: '/ui/' }).end();
    return true;
  }
  const name = assetName(path);
  if (name === null || name === undefined) {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8' }).end(`no dashboard file ${path}\n`);
    return true;
  }
  let asset: Asset;
  try {
    asset = await load(name);
  } catch (err) {
    const message = `the dashboard file ${name} cannot be read (${(err as Error).message}); was the dashboard copied into dist/src/dashboard by npm run build?`;
    res.writeHead(500, { ...headers, 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
    return true;
  }
  res.writeHead(200, {
    ...headers,
    'content-type': asset.type,
    'content-length': String(asset.body.length),
    'content-security-policy': contentSecurityPolicy(),
    'x-frame-options': 'DENY',
  });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
  return true;
}
