/** Errors of the training loop. */
import { NeuroShardError } from '../util/errors.js';

/** The model given to the trainer cannot be trained this way (for example a shard without the LM head). */
export class TrainingModelError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TRAINING_MODEL', message, { fault: 'caller', meta });
  }
}
