/** Robust aggregation of pseudo-gradients (see aggregate.ts for the rules of each aggregator). */
export { aggregate, isAggregatorName, DEFAULT_BYZANTINE_FRACTION } from './aggregate.js';
export {
  AGGREGATORS,
  type AggregateOptions,
  type AggregationRecord,
  type AggregationResult,
  type AggregatorName,
  type Contribution,
  type ContributionRecord,
  type RejectReason,
} from './types.js';
