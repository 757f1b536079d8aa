/** The training side: the solo inner loop (later: DiLoCo outer optimizer, robust aggregation, compression). */
export { TRAINER_DEFAULTS, trainerOptions, type TrainerOptions } from './options.js';
export { lrAt } from './schedule.js';
export { SoloTrainer, type StepTimings, type TrainStepResult, type TrainerEvents, type TrainerState } from './trainer.js';
export { trainLoop, type CheckpointRequest, type TrainLoopOptions, type TrainLoopResult, type TrainStepper } from './loop.js';
export type { Batch, BatchSource, TrainableModel } from './types.js';
export { ShardTrainable } from './shard-model.js';
export { TrainingModelError } from './errors.js';
export { checkOuterOptions, nesterovOuterStep, OuterOptimizer, pseudoGradient, type OuterOptions } from './outer.js';
export { checkRoundConfig, innerStepDone, nextRound, quorumSize, receive, startRound, tryClose, type CloseOutcome, type ReceiveVerdict, type RoundConfig, type RoundPhase, type RoundState } from './rounds.js';
