import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { parseHostPort, type HostPort } from './address.js';
import { parseSpiffeId } from '../pki/spiffe.js';
import { NAME } from './names.js';

/** Field types shared by the sidecar's configuration and the control plane's resources. */

export const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export const hostPort = z.string().transform((text, ctx): HostPort => {
  const parsed = parseHostPort(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

export const spiffeId = z.string().superRefine((text, ctx) => {
  try {
    parseSpiffeId(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});


/** A service, namespace or resource name: a DNS label. `what` names it in the message. */
export const dnsLabel = (what: string) => z.string().regex(NAME, `${what} must be lowercase letters, digits and '-' (DNS label, at most 63 characters)`);
