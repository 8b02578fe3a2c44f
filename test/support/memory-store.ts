/** An ObjectStore in memory, for unit tests of what runs on top of a repository. */
import type { ObjectStore } from '#domain/repository/store';

export class MemoryStore implements ObjectStore {
  readonly url = 'memory://test';
  readonly objects = new Map<string, Buffer>();

  async get(key: string) {
    return this.objects.get(key);
  }
  async exists(key: string) {
    return this.objects.has(key);
  }
  async putIfAbsent(key: string, body: Buffer) {
    if (this.objects.has(key)) return 'exists' as const;
    this.objects.set(key, body);
    return 'created' as const;
  }
  async put(key: string, body: Buffer) {
    this.objects.set(key, body);
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
  async list(prefix: string) {
    const names = new Set<string>();
    for (const key of this.objects.keys()) {
      if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0]!);
    }
    return [...names].sort();
  }
  /** Every scan's start (`startAfter`) and how many names it handed out, for tests of bounded listings. */
  readonly scans: Array<{ prefix: string; startAfter: string | undefined; read: number }> = [];
  async *scan(prefix: string, startAfter?: string) {
    const scan = { prefix, startAfter, read: 0 };
    this.scans.push(scan);
    for (const name of await this.list(prefix)) {
      if (startAfter !== undefined && name <= startAfter) continue;
      scan.read++;
      yield name;
    }
  }
  close() {}
}
