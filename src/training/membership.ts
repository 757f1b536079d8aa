/**
 * Who is a member of a layer's outer rounds when holders move (issue 9: a pool move moves a node's outer-sync
 * membership). Pure functions over plain data; training/sync.ts keeps the state and node/diloco.ts answers the wire.
 *
 * The layer pool's view says who holds a layer, but it lags: a holder that the pool moved to another span keeps
 * its old span in the others' views until its next heartbeats reach them. Waiting for it there would stall the old
 * layers' rounds until their deadline, and a joiner of the new layers would wait for its old peers to count it in. So
 * a holder says itself which layers it trains: its status lists them (`layers`), and a contribution for a layer it
 * does not train is answered `not_held` (no penalty: an honest race with a move). What a holder says of itself is
 * believed only to leave it out (it cannot add itself to a round the view does not name it a holder in).
 */

/** A layer id of a model of `numLayers` decoder layers ('embed', 'layers.<i>', 'head'). */
export function isModelLayer(id: string, numLayers: number): boolean {
  if (id === 'embed' || id === 'head') return true;
  const m = /^layers\.(0|[1-9][0-9]{0,5})$/.exec(id);
  return m !== null && Number(m[1]) < numLayers;
}

/**
 * A peer's answer about our layers, from its status: the ones it does not train (every one of `ours` not in its
 * `layers`). Undefined when the status does not list layers (an older node): nothing is known.
 */
export function notTrainedFromStatus(ours: readonly string[], layers: readonly string[] | undefined): Set<string> | undefined {
  if (layers === undefined) return undefined;
  const has = new Set(layers);
  return new Set(ours.filter((l) => !has.has(l)));
}

/**
 * The members of `layer`'s next round: ourselves, and every holder in the view that is not known to stay out of
 * training (`nonTrainers`: it does not serve the outer sync) nor to train other layers (`notTrained`: it said it does
 * not train this one, by its status or a `not_held` answer).
 */
export function layerMembers(self: string, layer: string, holders: readonly string[], nonTrainers: ReadonlySet<string>, notTrained: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  return [...new Set([self, ...holders.filter((h) => h !== self && !nonTrainers.has(h) && notTrained.get(h)?.has(layer) !== true)])];
}

/**
 * The peers whose statuses decide a joiner's entry round: those that train at least one of our layers (a holder the
 * view still lists for a layer it left counts nobody in our layers' rounds; waiting for it to count us stalled the
 * entry until its deadline). A status without `layers` (an older node) is taken at the view's word.
 */
export function entryPeers<T extends { layers?: readonly string[] }>(ours: readonly string[], statuses: ReadonlyMap<string, T>): Map<string, T> {
  const mine = new Set(ours);
  return new Map([...statuses].filter(([, s]) => s.layers === undefined || s.layers.some((l) => mine.has(l))));
}

/**
 * The members whose Δ a collecting round still waits for: not ourselves, not waived (listening, or released), not
 * in yet. None once the round closed.
 */
export function missingMembers(s: { phase: string; holders: readonly string[]; waived: readonly string[]; received: Readonly<Record<string, number>> }, self: string): string[] {
  if (s.phase !== 'collecting') return [];
  return s.holders.filter((h) => h !== self && !s.waived.includes(h) && !(h in s.received));
}
