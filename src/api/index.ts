/** The node's local HTTP endpoint: server, route shapes, and the typed client the CLI uses. */
export { API_DEFAULTS, ApiServer, type ApiServerModules, type ApiServerOptions } from './server.js';
export { API_CLIENT_DEFAULTS, ApiClient, ApiResponseError, NodeUnreachableError, type ApiClientOptions } from './client.js';
export {
  LedgerNotReadyError,
  SUBMIT_STATUSES,
  ledgerStatusSchema,
  registerLedgerRoutes,
  submitOutcomeSchema,
  type LedgerStatusView,
  type LedgerSubmitter,
  type SubmitOutcome,
  type SubmitStatus,
} from './ledger.js';
export {
  LIVENESS,
  nodeStatusSchema,
  peerStatusSchema,
  peersViewSchema,
  registerStatusRoutes,
  type Liveness,
  type NodeStatus,
  type PeerStatus,
  type PeersView,
  type SpanView,
  type StatusProvider,
} from './status.js';
export { API_KEY_PREFIX, API_KEYS_FILE, ApiKeyStore, apiKeysPath, createApiKey, readApiKeys, revokeApiKey, type ApiKeyRecord } from './keys.js';
export { RateLimiter, type RateDecision } from './rate-limit.js';
export type { ChatMessage, ServedModel, TextGenerationRequest, TextGenerationResult, TextGenerator, TokenEvent } from './openai/backend.js';
export { OpenAiError } from './openai/errors.js';
export {
  EVENT_STREAM_DEFAULTS,
  registerEventRoutes,
  sseEvent,
  type CoverageView,
  type DashboardFeed,
  type DashboardSnapshot,
  type DashboardState,
  type DashboardTick,
  type EvalPoint,
  type EventStreamOptions,
  type LogLine,
  type MarketView,
  type NodeView,
  type PeerView,
  type TrainPoint,
  type TrainingView,
  type WalletEntry,
  type WalletView,
} from './events.js';
export { DASHBOARD_CSP, loadDashboardAssets, registerStaticRoutes } from './static.js';
export { registerTrainingRoutes, type TrainingProvider, type TrainingReport } from './training.js';
export { checkLayersView, HOLDER_STATES, layersViewSchema, registerLayersRoutes, type HolderState, type LayersProvider, type LayersView } from './layers.js';
export {
  GENERATE_API_DEFAULTS,
  GENERATE_API_LIMITS,
  generateAnswer,
  generateErrorStatus,
  parseGenerateBody,
  registerGenerateRoutes,
  type GenerateDefaults,
  type GenerateFinishReason,
  type GenerateListener,
  type GenerateOutput,
  type GenerateParams,
  type Generator,
  type RouteHop,
  type UsedRoute,
  type UsedRouteAnswer,
} from './generate.js';
