/**
 * Typed errors of the model folder. Each says whose fault it was (see util/errors.ts):
 *
 * - ModelConfigError (`config`): a LlamaConfig value is missing, out of range or inconsistent.
 * - UnsupportedModelOptionError (`config`): the config asks for something this engine does not implement
 *   (rope_scaling, attention_bias, …); the message names the option and its value.
 * - CheckpointError (`config`): a checkpoint file is truncated, corrupted or does not match what was expected; the
 *   message names the file and what was expected. `code` tells the cases apart.
 * - ModelStateError (`caller`): the model was used out of order (backward before forward, a span that does not hold
 *   the embedding given token ids, …).
 */
import { NeuroShardError } from '../util/errors.js';

export class ModelConfigError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('MODEL_CONFIG_INVALID', message, { fault: 'config', meta });
  }
}

export class UnsupportedModelOptionError extends NeuroShardError {
  readonly option: string;

  constructor(option: string, value: unknown, why: string) {
    super('MODEL_OPTION_UNSUPPORTED', `unsupported model option ${option}=${JSON.stringify(value)}: ${why}`, {
      fault: 'config',
      meta: { option, value },
    });
    this.option = option;
  }
}

export type CheckpointErrorCode =
  | 'CHECKPOINT_MISSING'
  | 'CHECKPOINT_TRUNCATED'
  | 'CHECKPOINT_CORRUPT'
  | 'CHECKPOINT_MISMATCH'
  | 'CHECKPOINT_UNSUPPORTED'
  | 'CHECKPOINT_WRITE_FAILED';

export class CheckpointError extends NeuroShardError {
  readonly file: string;

  constructor(code: CheckpointErrorCode, file: string, message: string, meta: Record<string, unknown> = {}) {
    super(code, `${file}: ${message}`, { fault: code === 'CHECKPOINT_WRITE_FAILED' ? 'local' : 'config', meta: { file, ...meta } });
    this.file = file;
  }
}

export class ModelStateError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('MODEL_STATE', message, { fault: 'caller', meta });
  }
}
