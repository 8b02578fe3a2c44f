/**
 * Virtual time for the fleet bench. Installed over the process's globals
 * (setTimeout, clearTimeout, Date, Math.random), so that every wait in the
 * code under test (a Wait state, a Retry interval, a task timeout in
 * aws-local-stepfunctions, the AWS SDK's retry backoff, the model's latencies)
 * is a timer on a virtual clock, and hours of snapshot time pass in the time
 * it takes to run the code between them. The clock moves to the next timer
 * only when nothing else can run: the microtask queue is empty and a few
 * rounds of the real event loop found no work (the model does no I/O).
 * Timers due at the same instant fire in the order they were set, and
 * Math.random is a seeded generator, so a run is repeatable.
 */
import { mulberry32 } from './random.ts';

interface Timer {
  id: number;
  at: number;
  seq: number;
  fn: (...args: unknown[]) => void;
  args: unknown[];
}

/** A binary min-heap of timers by (at, seq). */
class TimerHeap {
  private readonly items: Timer[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Timer | undefined {
    return this.items[0];
  }
  push(timer: Timer): void {
    const items = this.items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): Timer | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < items.length && before(items[l]!, items[smallest]!)) smallest = l;
        if (r < items.length && before(items[r]!, items[smallest]!)) smallest = r;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

const real = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setImmediate: globalThis.setImmediate,
  Date: globalThis.Date,
  random: Math.random,
};

/** What setTimeout returns here: enough of Node's Timeout for the code that calls unref or refresh. */
class VirtualTimeout {
  constructor(readonly id: number) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return true;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

export class VirtualClock {
  /** Milliseconds since the epoch, virtual. */
  now: number;
  private readonly timers = new TimerHeap();
  private readonly cancelled = new Set<number>();
  private nextId = 1;
  private seq = 0;
  private installed = false;
  /** Timers fired, for the report (a measure of the simulation's work). */
  fired = 0;

  constructor(start: Date) {
    this.now = start.getTime();
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(() => resolve(), Math.max(0, ms), []));
  }

  /** Calls `fn` after `ms` of virtual time (whether or not the clock is installed over the globals). */
  after(ms: number, fn: () => void): void {
    this.setTimer(fn, ms, []);
  }

  private setTimer(fn: (...args: unknown[]) => void, ms: number, args: unknown[]): number {
    const id = this.nextId++;
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.timers.push({ id, at: this.now + delay, seq: this.seq++, fn, args });
    return id;
  }

  /** Replaces the globals until `uninstall`. */
  install(seed: number): void {
    if (this.installed) throw new Error('the virtual clock is already installed');
    this.installed = true;
    const clock = this;
    globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
      new VirtualTimeout(clock.setTimer(fn, ms ?? 0, args))) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((timer?: unknown) => {
      if (timer === undefined || timer === null) return;
      clock.cancelled.add(Number(timer));
    }) as typeof clearTimeout;
    const RealDate = real.Date;
    class VirtualDate extends RealDate {
      constructor(...args: unknown[]) {
        if (args.length === 0) super(clock.now);
        else super(...(args as [string]));
      }
      static override now(): number {
        return clock.now;
      }
    }
    globalThis.Date = VirtualDate as DateConstructor;
    Math.random = mulberry32(seed);
  }

  uninstall(): void {
    globalThis.setTimeout = real.setTimeout;
    globalThis.clearTimeout = real.clearTimeout;
    globalThis.Date = real.Date;
    Math.random = real.random;
    this.installed = false;
  }

  /** Lets every promise chain that can run, run: a few rounds of the real event loop. */
  private async settle(): Promise<void> {
    for (let round = 0; round < 3; round++) await new Promise<void>((resolve) => real.setImmediate(resolve));
  }

  /**
   * Runs until `done` resolves: whenever the process is idle, the clock jumps
   * to the next timer and fires every timer due then. Throws when nothing is
   * left to fire and `done` has not resolved (a deadlock in the model), or
   * when virtual time passes `limitMs` after the start.
   */
  async run<T>(done: Promise<T>, limitMs: number): Promise<T> {
    let finished = false;
    let failure: unknown;
    const result = done.then(
      (value) => {
        finished = true;
        return value;
      },
      (error) => {
        finished = true;
        failure = error;
        return undefined as T;
      },
    );
    const start = this.now;
    await this.settle();
    while (!finished) {
      const next = this.timers.pop();
      if (!next)
        throw new Error('the simulation is stuck: nothing left to run and the fleet has not finished');
      if (this.cancelled.delete(next.id)) continue;
      if (next.at - start > limitMs)
        throw new Error(`the simulation ran past ${limitMs / 3_600_000} h of virtual time`);
      this.now = Math.max(this.now, next.at);
      this.fired++;
      next.fn(...next.args);
      while (this.timers.peek() && this.timers.peek()!.at <= this.now) {
        const due = this.timers.pop()!;
        if (this.cancelled.delete(due.id)) continue;
        this.fired++;
        due.fn(...due.args);
      }
      await this.settle();
    }
    const value = await result;
    if (failure) throw failure;
    return value;
  }
}
