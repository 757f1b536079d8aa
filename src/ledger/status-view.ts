/**
 * The ledger status as JSON (`neuroshard ledger status --json`, GET /api/ledger/status): the totals as decimal NEURO
 * strings, the latest signed checkpoint (null fields: nothing final yet) and, from a running node, the state of
 * finality. Pure: moved from node/ledger.ts (session 16) unchanged. Its shape is api/ledger.ts LedgerStatusView
 * (without the validator figures, which node/ adds); ledger/ does not import api/, so the type is declared here.
 */
import { formatAmount } from './amount.js';
import type { FinalityStatus } from './finality.js';
import type { LedgerStatus } from './ledger.js';

export interface LedgerStatusJson {
  stateHash: string;
  /** True while a deferred replay is pending: stateHash and events are not final yet. */
  replayPending: boolean;
  events: number;
  minted: string;
  burned: string;
  staked: string;
  escrowed: string;
  finalizedSeq: number | null;
  finalizedHeight: number | null;
  finalizedHash: string | null;
  finalizedStateHash: string | null;
  /** Present only when a running node's finality status is given. */
  finality?: FinalityStatus['state'];
}

export function ledgerStatusView(s: LedgerStatus, finality?: Pick<FinalityStatus, 'state'>): LedgerStatusJson {
  return {
    stateHash: s.stateHash,
    replayPending: s.replayPending,
    events: s.events,
    minted: formatAmount(s.minted),
    burned: formatAmount(s.burned),
    staked: formatAmount(s.staked),
    escrowed: formatAmount(s.escrowed),
    finalizedSeq: s.finalized?.seq ?? null,
    finalizedHeight: s.finalized?.height ?? null,
    finalizedHash: s.finalized?.hash ?? null,
    finalizedStateHash: s.finalized?.stateHash ?? null,
    ...(finality !== undefined ? { finality: finality.state } : {}),
  };
}
