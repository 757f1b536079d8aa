/**
 * Named model shapes: `nano` (the genesis model and the benchmark's anchor) and every rung of the scaler's ladder,
 * named by width and depth (`16x1024` is 16 layers × 1024 wide), all with the 4,096-token genesis vocabulary and
 * nano's context unless overridden.
 */
import { InvalidArgumentError } from '../util/errors.js';
import { type LlamaConfig, NANO } from './config.js';
import { ladderDepth, ladderWidths, rung, type RungOptions } from './scaler.js';

/** Every preset name: 'nano', then the ladder rungs '6x384', …, '16x1024', '24x2048', …, in ascending size. */
export function presetNames(): string[] {
  return ['nano', ...ladderWidths().slice(1).map((c) => `${ladderDepth(c)}x${c}`)];
}

export function presetConfig(name: string, opts: RungOptions = {}): LlamaConfig {
  if (name === 'nano') return rung(NANO.hidden_size, opts);
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (m !== null) {
    const c = Number(m[2]);
    if (ladderWidths().includes(c) && ladderDepth(c) === Number(m[1])) return rung(c, opts);
  }
  throw new InvalidArgumentError(`unknown model preset "${name}" (known: nano, ${presetNames().slice(1, 4).join(', ')}, …, ${presetNames().at(-1)})`, { preset: name });
}
