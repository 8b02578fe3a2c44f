/**
 * The turn-taking that decodes prefetched WAL objects (Repository.fetchWal):
 * one at a time, and the earliest file waiting first, whatever order the
 * objects arrived in.
 */
import { expect, it } from 'vitest';
import { InOrder } from '#domain/repository/in-order';

it('runs one piece of work at a time, the lowest key waiting first', async () => {
  const turns = new InOrder();
  const order: string[] = [];
  let finishFirst!: () => void;
  const first = turns.run('000000010000000000000005', async () => {
    order.push('5 starts');
    await new Promise<void>((resolve) => {
      finishFirst = resolve;
    });
    order.push('5 ends');
  });
  // Arriving while 5 is decoded, in this order: 8, 6, 7.
  const later = ['000000010000000000000008', '000000010000000000000006', '000000010000000000000007'].map(
    (key) =>
      turns.run(key, async () => {
        order.push(`${Number.parseInt(key.slice(-2), 16)}`);
      }),
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(order).toEqual(['5 starts']);
  finishFirst();
  await Promise.all([first, ...later]);
  expect(order).toEqual(['5 starts', '5 ends', '6', '7', '8']);
});

it('passes the turn on when a piece of work fails, and reports the failure to its caller', async () => {
  const turns = new InOrder();
  const failing = turns.run('a', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    throw new Error('damaged object');
  });
  const next = turns.run('b', async () => 'decoded');
  await expect(failing).rejects.toThrow('damaged object');
  await expect(next).resolves.toBe('decoded');
});
