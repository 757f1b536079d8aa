import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prepareTransfer } from '../../../src/compute/transfer.js';

describe('compute/transfer', () => {
  it('transfers arrays that own their whole buffer, once per buffer', () => {
    const a = new Float32Array([1, 2, 3]);
    const b = new Int32Array(4);
    const alias = new Uint8Array(a.buffer);
    const { value, transfer } = prepareTransfer({ type: 'x', a, nested: { list: [b, alias] } });
    assert.equal(value.a, a);
    assert.equal(value.nested.list[0], b);
    assert.deepEqual(new Set(transfer), new Set([a.buffer, b.buffer]));
    assert.equal(transfer.length, 2);
  });

  it('copies a partial view instead of shipping (or detaching) its whole buffer', () => {
    const big = new Float32Array(1000).map((_, i) => i);
    const part = big.subarray(10, 20);
    const { value, transfer } = prepareTransfer({ part });
    assert.notEqual(value.part, part);
    assert.equal(value.part.buffer.byteLength, 40);
    assert.deepEqual(Array.from(value.part), Array.from(part));
    assert.deepEqual(transfer, [value.part.buffer]);
    // the caller's buffer is untouched after the post
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(value, transfer);
    port1.close();
    port2.close();
    assert.equal(big.length, 1000);
    assert.equal(value.part.length, 0, 'the private copy was the one transferred');
  });

  it('with copy: true clones every array and leaves the originals attached after posting', () => {
    const a = new Float32Array([1, 2]);
    const { value, transfer } = prepareTransfer({ a }, { copy: true });
    assert.notEqual(value.a, a);
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(value, transfer);
    port1.close();
    port2.close();
    assert.deepEqual(Array.from(a), [1, 2]);
  });

  it('leaves SharedArrayBuffer views and non-array values alone', () => {
    const s = new Int32Array(new SharedArrayBuffer(8));
    const { value, transfer } = prepareTransfer({ s, n: 3, str: 'x', nil: null });
    assert.equal(value.s, s);
    assert.equal(value.n, 3);
    assert.deepEqual(transfer, []);
  });
});
