/**
 * The layer pool: capacity, placement of spans, replica restoration and rebalancing (pure functions over a view
 * of the registry), and the view itself built from liveness and holder records.
 */
export * from './placement.js';
export * from './capacity.js';
export * from './weights.js';
export * from './transfer.js';
export * from './span-meter.js';
export * from './held-range.js';
export * from './held-hash.js';
export * from './model-files.js';
export * from './measure.js';
export * from './view.js';
export * from './early-round.js';
export * from './service.js';
