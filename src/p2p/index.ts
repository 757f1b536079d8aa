/**
 * The peer-to-peer layer: our small network interface (types.ts), its libp2p implementation, an in-memory one for
 * tests, the bootstrapper and the peer score table. Generic: it knows no application words.
 */
export type * from './types.js';
export { NetworkError } from './errors.js';
export { PeerScoreTable, PENALTY, type PeerScoreOptions, type PeerScoreEvents } from './peer-score.js';
export { MemoryHub, MemoryNetwork, MemoryStream, StreamResetError } from './memory.js';
export { contentCid } from './content-key.js';
