/**
 * The one place the tests load @peculiar/x509 (an independent decoder to check what
 * src/pki writes; weft itself encodes and decodes X.509 with node:crypto and src/pki/der.ts).
 * Import `x509` from here, never from the package
 * directly: this module loads the Reflect metadata polyfill its DI container (tsyringe) needs and points it at Node's
 * WebCrypto before anything else touches it.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
