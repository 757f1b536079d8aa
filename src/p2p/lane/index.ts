export { LANE_DEFAULTS, LaneManager, type LaneNetwork, type LaneOptions, type LaneStats, type StreamLanes } from './manager.js';
export { LaneError, type LaneErrorCode } from './errors.js';
export { Lane } from './lane.js';
export { LaneStream, LaneStreamResetError } from './stream.js';
