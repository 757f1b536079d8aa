/** Pipeline training across a chain of stages (in-process LocalStage; OpStage over the worker or the network). */
export { LocalStage, type PipelineStage, type StageForwardResult, type StepApply } from './stage.js';
export { PipelineTrainer, batchOf, type PipelineOptions } from './trainer.js';
export { PIPELINE_SCHEDULES, pipelineSchedule, simulateSchedule, type PipelineOp, type PipelineScheduleName, type Utilisation } from './schedule.js';
export { OpStage, runStageOp, type StageOp, type StageOpResult, type StageTransport } from './ops.js';
