/**
 * The hash vote on one layer's state after an outer round (training/sync.ts agree; docs/TRAINING.md "The hash vote"),
 * as a pure function over the votes in and the number of voters that may still report.
 *
 * - The hash held by the most voters wins (`win`): a holder with another state downloads the winners' and verifies it.
 * - A tie at the top (`tie`: no hash has more votes than every other, e.g. holders that left each other out of their
 *   rounds aggregated three different sets of Δ, or two holders with two states) is settled by the caller
 *   (sync.ts agree): when every tied voter began the round from our state, every holder goes back to that state (the
 *   round's start: what the previous vote agreed on), which needs no agreement on a winner, so holders that saw
 *   different subsets of the reports still end with one state and none takes a state only one other holder had;
 *   otherwise (holders that began from different states: numbers that drifted apart, a late joiner) the smallest of
 *   the tied hashes, as before, which every holder that saw the same reports computes alike.
 *
 * While votes are missing the outcome is decided early only when the missing ones cannot change it: the leading hash
 * stays ahead of every other, and of a hash nobody reported yet, whatever the missing voters report.
 */
export type VoteOutcome = { kind: 'win'; hash: string } | { kind: 'tie'; hashes: string[] } | { kind: 'pending' };

/** `votes`: the state hashes reported (one per voter, ours included); `pending`: voters that may still report. */
export function voteOutcome(votes: readonly string[], pending: number): VoteOutcome {
  const counts = new Map<string, number>();
  for (const v of votes) counts.set(v, (counts.get(v) ?? 0) + 1);
  const ranked = [...counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const [top, topN] = ranked[0] ?? [undefined, 0];
  const secondN = ranked[1]?.[1] ?? 0;
  if (pending > 0) return top !== undefined && topN > secondN + pending && topN > pending ? { kind: 'win', hash: top } : { kind: 'pending' };
  if (top === undefined) return { kind: 'pending' };
  if (topN > secondN) return { kind: 'win', hash: top };
  return { kind: 'tie', hashes: ranked.filter(([, n]) => n === topN).map(([h]) => h) };
}
