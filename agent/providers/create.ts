/** Which snapshot provider a command uses, by name: each is loaded only when it is chosen. */
import { UsageError } from '#domain/errors';
import type { SnapshotProvider } from './provider.ts';

export interface ProviderOptions {
  /** copy: where copies go. */
  snapshotDir?: string;
  /** exec: the operator's command. */
  command?: string[];
}

export const providerNames = ['copy', 'btrfs', 'exec'] as const;
export type ProviderName = (typeof providerNames)[number];

/** Providers a drill can restore with on this host. */
export const localProviders: readonly string[] = ['copy', 'btrfs'];

export async function createProvider(
  name: string,
  options: ProviderOptions,
  purpose: 'snapshot' | 'restore' = 'snapshot',
): Promise<SnapshotProvider> {
  switch (name) {
    case 'copy': {
      if (!options.snapshotDir && purpose === 'snapshot') {
        throw new UsageError('--provider copy needs --snapshot-dir DIR, where the copies go');
      }
      const { CopyProvider } = await import('./copy.ts');
      return new CopyProvider(options.snapshotDir ?? '');
    }
    case 'btrfs': {
      const { BtrfsProvider } = await import('./btrfs.ts');
      return new BtrfsProvider();
    }
    case 'exec': {
      if (!options.command?.length) throw new UsageError('--provider exec needs the command after --');
      const { ExecProvider } = await import('./exec.ts');
      return new ExecProvider(options.command);
    }
    default:
      throw new UsageError(`--provider ${JSON.stringify(name)} is not one of ${providerNames.join(', ')}`);
  }
}
