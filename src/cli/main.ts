#!/usr/bin/env node
import * as nodeModule from 'node:module';
import { isWeftError } from '../errors.js';

// Node >= 22.1 keeps V8's compiled code for the CLI bundle on disk (in the OS temp dir, or
// NODE_COMPILE_CACHE; NODE_DISABLE_COMPILE_CACHE=1 turns it off), so later starts skip most
// parsing and compiling. Node 20 has no compile cache: nothing happens.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const USAGE = `weft: a minimalist service mesh

  weft demo                       run a local demo mesh (a control plane, three services, their sidecars)
  weft ca init|intermediate|issue|inspect   PKI (docs/pki.md)
  weft sidecar [-c FILE] [flags]  the mTLS sidecar for one service (docs/sidecar.md)
  weft run [sidecar flags] -- CMD ARGS...   start a sidecar, then the app (docs/standalone.md)
  weft server --data DIR          the control plane: CA signer and enrollment API (docs/control-plane.md)
  weft token create --service NAME   a join token for one service (docs/control-plane.md)
  weft apply -f FILE | get KIND [NAME] | delete KIND NAME   resources on the server
  weft services                   the catalog: services, instances, health
  weft migrate status [SERVICE]   who still calls in plaintext; ready for strict? (docs/migration.md)
  weft tap SERVICE [--path P]     live requests of a service, one line each (docs/observability.md)
  weft top [--window 10s]         the busiest routes: rate, success, latency (docs/observability.md)
  weft version

Run \`weft COMMAND --help\` for a command's flags.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'ca':
      return (await import('./ca.js')).caCommand(rest);
    case 'sidecar':
      return (await import('./sidecar.js')).sidecarCommand(rest);
    case 'server':
      return (await import('./server.js')).serverCommand(rest);
    case 'token':
      return (await import('./token.js')).tokenCommand(rest);
    case 'apply':
      return (await import('./resources.js')).applyCommand(rest);
    case 'get':
      return (await import('./resources.js')).getCommand(rest);
    case 'delete':
      return (await import('./resources.js')).deleteCommand(rest);
    case 'services':
      return (await import('./resources.js')).servicesCommand(rest);
    case 'migrate':
      return (await import('./migrate.js')).migrateCommand(rest);
    case 'tap':
      return (await import('./tap.js')).tapCommand(rest);
    case 'top':
      return (await import('./top.js')).topCommand(rest);
    case 'run':
      return (await import('./run.js')).runCommand(rest);
    case 'demo':
      return (await import('./demo.js')).demoCommand(rest);
    case 'version':
    case '--version': {
      const { readFile } = await import('node:fs/promises');
      const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
      process.stdout.write(`weft ${pkg.version} (node ${process.version})\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`weft: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isWeftError(err)) {
      process.stderr.write(`weft: ${err.message}\n`);
      process.exitCode = err.code === 'WEFT_E_USAGE' ? 2 : 1;
    } else {
      process.stderr.write(`weft: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
