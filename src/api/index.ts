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
export { checkLayersView, HOLDER_STATES, layersViewSchema, registerLayersRoutes, type HolderState, type LayersProvider, type LayersView } from './layers.js';
export {
  GENERATE_API_DEFAULTS,
  GENERATE_API_LIMITS,
  generateAnswer,
  generateErrorStatus,
  parseGenerateBody,
  registerGenerateRoutes,
  type GenerateFinishReason,
  type GenerateListener,
  type GenerateOutput,
  type GenerateParams,
  type Generator,
  type RouteHop,
} from './generate.js';
