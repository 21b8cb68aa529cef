import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { parseHostPort, type HostPort } from './address.js';
import { parseSpiffeId } from '../pki/spiffe.js';

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

