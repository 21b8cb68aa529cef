import type { TrafficPolicyConfig } from '../../config/traffic-policy-schema.js';
import { ConsistentHashPicker } from './consistent-hash.js';
import { LeastRequestPicker } from './least-request.js';
import { RandomPicker } from './random.js';
import { RoundRobin } from './round-robin.js';
import type { Picker } from './types.js';
import { WeightedRoundRobinPicker } from './weighted-round-robin.js';

export type { LbEndpoint, Picker } from './types.js';

/**
 * A picker for one endpoint list, by `config.policy` (LeastRequest when `config` is
 * undefined). `random` returns numbers in [0, 1) (Math.random by default; tests pass a
 * seeded one). Make a new picker when the endpoint list changes. The caller extracts the
 * ConsistentHash header (`config.consistentHash.header`, lower case) and passes its value
 * as `pick`'s `hashKey`.
 */
export function createPicker(config: TrafficPolicyConfig['loadBalancer'] | undefined, random: () => number = Math.random): Picker {
  switch (config?.policy ?? 'LeastRequest') {
    case 'LeastRequest':
      return new LeastRequestPicker(random);
    case 'RoundRobin':
      // A random start, so that sidecars started together do not all begin with endpoint 0.
      return new RoundRobin(0, Math.floor(random() * 0x7fff_ffff));
    case 'WeightedRoundRobin':
      return new WeightedRoundRobinPicker(random);
    case 'Random':
      return new RandomPicker(random);
    case 'ConsistentHash':
      return new ConsistentHashPicker(random);
  }
}
