/** The swarm router: route choice over plain data, and the entry node's generation driver with failover. */
export { BanList, candidateChains, chainCost, chooseRoute, chooseRouteAvoiding, exploreRoute, hopCost, isQuiet, LayersUncoveredError, missingLayers, planFailover, QUIET_AFTER_HEARTBEATS, DEFAULT_MS_PER_LAYER, DEFAULT_RTT_MS, EXPLORE_UNBONDED_SHARE, ROUTE_DEFAULTS, UNBONDED_WEIGHT, UNPROVEN_RTT_MS, type ChainHop, type FailoverPlan, type HolderView, type RouteChoiceOptions } from './route.js';
export {
  DRIVER_DEFAULTS,
  PUSH_AUTO_MIN_RTT_MS,
  runGeneration,
  type DriverDeps,
  type DriverOptions,
  type GenerationListener,
  type GenerationRequest,
  type GenerationResult,
  type RouteHop,
  type HopInput,
  type HopOpener,
  type HopOutput,
  type HopSession,
  type ModelView,
  type SessionSpec,
} from './driver.js';
export { TextAssembler } from './text.js';
export { holderViews, LatencyTable, LATENCY_EWMA_ALPHA, msPerLayerOf, roundTripMs, type HolderViewInput, type PeerHolding } from './measure.js';
