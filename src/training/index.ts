/** The training side: the solo inner loop, pipeline training over stages, the DiLoCo outer optimizer and rounds; robust aggregation in aggregation/, Δ compression in compression/. */
export { TRAINER_DEFAULTS, trainerOptions, type TrainerOptions } from './options.js';
export { lrAt } from './schedule.js';
export { SoloTrainer, type StepTimings, type TrainStepResult, type TrainerEvents, type TrainerState } from './trainer.js';
export { trainLoop, type CheckpointRequest, type TrainLoopOptions, type TrainLoopResult, type TrainStepper } from './loop.js';
export type { Batch, BatchSource, TrainableModel } from './types.js';
export { ShardTrainable } from './shard-model.js';
export { TrainingModelError } from './errors.js';
export { checkOuterOptions, nesterovOuterStep, OuterOptimizer, pseudoGradient, type OuterOptions } from './outer.js';
export { checkRoundConfig, contributionRoundCheck, innerStepDone, MAX_ROUND, nextRound, nextRoundNumber, quorumSize, receive, startRound, tryClose, type CloseOutcome, type ReceiveVerdict, type RoundConfig, type RoundPhase, type RoundState } from './rounds.js';
export { AppliedSteps } from './applied-steps.js';
export { KEPT_ROUNDS, layerEntryState, livePins, PIN_LIMITS, pinRound, roundsToKeep, sequenceToJoin, type ClosedView, type EntryView, type PinLimits, type RoundPin } from './keep.js';
export { LocalStage, OpStage, PipelineTrainer, runStageOp, pipelineSchedule, simulateSchedule, type PipelineOptions, type PipelineScheduleName, type PipelineStage, type StageOp, type StageOpResult, type StageTransport, type Utilisation } from './pipeline/index.js';
export { ChainTrainer, driverGone, HopFailedError, HopInnerLoop, NoChainError, TrainStepsReachedError, planChain, type ChainCandidate, type ChainHop, type ChainTrainerEvents, type ChainTrainerOptions, type HopInnerLoopOptions, type LocalSpanStage } from './chain.js';
export type { InnerLoop, InnerStepsResult, LayerParams } from './inner.js';
export { innerLoopParams, runOuterRounds, type OuterRoundsOptions } from './chain-outer.js';
export { voteOutcome, type VoteOutcome } from './vote.js';
export { DiLoCoNode, layerId, layerRanges, type DiLoCoOptions, type LayerContribution, type LayerRange } from './diloco.js';
export {
  DiLoCoStepper,
  layerStateHash,
  majorityHash,
  OuterSync,
  PeerNotTrainingError,
  STATUS_HISTORY,
  SyncError,
  type InnerParams,
  type LastRoundReport,
  type LayerState,
  type OuterSyncOptions,
  type PeerTrainingStatus,
  type SendVerdict,
  type SyncStats,
  type SyncTransport,
} from './sync.js';
export { replicaResume, type AdoptedModel, type ReplicaCheckpoint, type ReplicaResume } from './replica-resume.js';
export {
  asideToRemove,
  momentsUnreadable,
  OTHER_SHAPE_DIR,
  otherShapeCheckpoints,
  soloMomentsDamaged,
  trainerResume,
  UNSUPPORTED_DIR,
  unsupportedCheckpoints,
  type AsideBound,
  type TrainerResume,
} from './resume.js';
