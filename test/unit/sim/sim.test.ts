import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSim, SCENARIOS, type SimResult } from '../../../src/sim/sim.js';
import { EventQueue, modelFor } from '../../../src/sim/world.js';

const KEYS = ['nodes', 'sim_minutes', 'coverage_min', 'coverage_2rep_share', 'route_success', 'dht_lookup_success', 'dht_lookup_ms_p99', 'proof_propagation_s_p99', 'ledger_converge_s', 'wall_s'];

function withoutWall(r: SimResult): Omit<SimResult, 'wall_s'> {
  const { wall_s: _w, ...rest } = r;
  return rest;
}

describe('sim: event queue', () => {
  it('runs events in time order, equal times first-in first-out, and never reads the wall clock', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.at(30, () => seen.push('c'));
    q.at(10, () => seen.push('a1'));
    q.at(10, () => seen.push('a2'));
    q.at(20, () => {
      seen.push('b');
      q.after(5, () => seen.push('b+5'));
    });
    q.runUntil(100);
    assert.deepEqual(seen, ['a1', 'a2', 'b', 'b+5', 'c']);
    assert.equal(q.nowMs, 100);
    assert.equal(q.now(), EventQueue.EPOCH_MS + 100);
  });

  it('maps network sizes to the seed table', () => {
    assert.equal(modelFor(10).layers, 16);
    assert.equal(modelFor(100).layers, 32);
    assert.equal(modelFor(1000).layers, 64);
  });
});

describe('sim: runs', () => {
  it('same seed gives the same result; another seed another one', () => {
    const a = runSim({ nodes: 12, minutes: 12, scenario: 'churn', seed: 7 }).result;
    const b = runSim({ nodes: 12, minutes: 12, scenario: 'churn', seed: 7 }).result;
    const c = runSim({ nodes: 12, minutes: 12, scenario: 'churn', seed: 8 }).result;
    assert.deepEqual(withoutWall(a), withoutWall(b));
    assert.notDeepEqual(withoutWall(a), withoutWall(c));
    // the Sybil scenario too (liveness rotation, route choice and the eclipse check draw from the run's RNG only)
    const s1 = runSim({ nodes: 12, minutes: 12, scenario: 'sybil', seed: 7 }).result;
    const s2 = runSim({ nodes: 12, minutes: 12, scenario: 'sybil', seed: 7 }).result;
    assert.deepEqual(withoutWall(s1), withoutWall(s2));
  });

  it('a steady small swarm: every layer covered, routes and lookups succeed, proofs reach everyone', () => {
    const { result: r, series } = runSim({ nodes: 10, minutes: 12, scenario: 'steady', seed: 3, series: true });
    for (const k of KEYS) assert.ok(k in r, `missing ${k}`);
    assert.equal(r.coverage_min, 1);
    assert.ok(r.coverage_2rep_share >= 0.99, `2 replicas ${r.coverage_2rep_share}`);
    assert.ok(r.route_success >= 0.99, `routes ${r.route_success}`);
    assert.ok(r.routes > 100);
    assert.ok(r.dht_lookup_success >= 0.99, `lookups ${r.dht_lookup_success}`);
    assert.ok(r.lookups > 50);
    assert.ok(r.proof_propagation_s_p99 > 0 && r.proof_propagation_s_p99 < 10);
    assert.ok(r.signatures.signed >= 10, 'every holder signs a real record');
    assert.equal(series.tMin.length, series.coveredLayers.length);
    assert.ok(series.coveredLayers.at(-1) === 16);
  });

  for (const scenario of SCENARIOS) {
    it(`scenario ${scenario} runs at small scale`, () => {
      const { result: r } = runSim({ nodes: 10, minutes: 12, scenario, seed: 1 });
      assert.equal(r.scenario, scenario);
      for (const k of ['coverage_min', 'coverage_2rep_share', 'route_success', 'dht_lookup_success'] as const) {
        assert.ok(r[k] >= 0 && r[k] <= 1, `${k} = ${r[k]}`);
      }
      assert.ok(r.routes > 0 && r.lookups > 0);
      if (scenario === 'partition') assert.ok(r.ledger_converge_s !== null && r.ledger_converge_s <= 60, `converge ${r.ledger_converge_s}`);
      if (scenario === 'sybil') assert.ok(r.sybil_eclipsed_layer_lookups !== null);
    });
  }

  it('a flood from one address block: storing nodes keep at most the per-block quota of its records, honest ones all', () => {
    // 100 signed Sybil keys from one /24 against the real BlockQuota (64 peers per block) at every storing node
    const { result: r } = runSim({ nodes: 10, minutes: 20, scenario: 'sybil', seed: 1, sybilBlocks: 1, sybilSignedKeys: 100 });
    const q = r.dht_block_quota!;
    assert.equal(q.sybil_blocks, 1);
    assert.equal(q.sybil_signed, 100);
    assert.ok(q.sybil_refused > 0, `refused ${q.sybil_refused}`);
    assert.equal(q.sybil_records_stored_per_node_max, 64);
    assert.equal(q.honest_refused, 0);
    assert.ok(q.honest_stored > 0);
    // without the quota every put is stored
    const { result: off } = runSim({ nodes: 10, minutes: 20, scenario: 'sybil', seed: 1, sybilBlocks: 1, sybilSignedKeys: 100, dhtBlockQuota: false });
    assert.equal(off.dht_block_quota!.sybil_refused, 0);
    assert.ok(off.dht_block_quota!.sybil_records_stored_per_node_max > 64);
  });

  it('refuses bad options with a typed error', () => {
    assert.throws(() => runSim({ nodes: 1, minutes: 5, scenario: 'churn', seed: 1 }), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => runSim({ nodes: 10, minutes: 5, scenario: 'nope' as 'churn', seed: 1 }), { code: 'INVALID_ARGUMENT' });
  });
});
