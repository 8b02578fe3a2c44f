/**
 * The database hosts as agents: what happens between Step Functions calling
 * SSM SendCommand (with a task token) and the agent answering with
 * SendTaskSuccess. SSM delivers the command (seconds), the agent runs it
 * (begin: pg_backup_start's checkpoint, immediate or spread; end:
 * pg_backup_stop and the archive of its last WAL segment; abort), and
 * answers. SendCommand draws from SSM's (unpublished, assumed) token bucket:
 * beyond it Step Functions' SSM integration fails the task with
 * `Ssm.ThrottlingException`, which the definition's Retry and Catch see.
 */

import type { CallLog } from './clients.ts';
import type { VirtualClock } from './clock.ts';
import { awsError, buckets, TokenBucket } from './quotas.ts';
import type { Draw } from './random.ts';
import type { SfnModel } from './sfn.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Latency medians in seconds (lognormal around them); see bench/README.md for where they come from. */
export const hostLatency = {
  ssmDelivery: 2,
  fastCheckpoint: 3,
  spreadCheckpoint: 150,
  stopAndArchive: 3,
  abort: 1,
} as const;

/** What one backup's host commands record: when backup mode started and ended (virtual ms). */
export interface HostTimes {
  backupModeFrom?: number;
  backupModeTo?: number;
}

export class Hosts {
  private readonly sendCommand: TokenBucket;
  refused = 0;

  constructor(
    private readonly clock: VirtualClock,
    private readonly sfn: SfnModel,
    private readonly draw: Draw,
  ) {
    this.sendCommand = new TokenBucket(
      buckets['ssm:SendCommand'].size,
      buckets['ssm:SendCommand'].refill,
      clock.now,
    );
  }

  private seconds(median: number): number {
    return this.draw.lognormal(median, 0.5, median / 10, median * 20) * 1000;
  }

  /** The task handler for an SSM sendCommand.waitForTaskToken state of one execution. */
  handler(log: CallLog, times: HostTimes): (input: Json) => Promise<Json> {
    const bump = (key: string, map = log.calls) => map.set(key, (map.get(key) ?? 0) + 1);
    return async (input) => {
      const parameters = (input as { Parameters: Record<string, string[]> }).Parameters;
      const command = parameters.command?.[0] ?? 'unknown';
      bump('SSM:SendCommand');
      if (!this.sendCommand.take(this.clock.now)) {
        this.refused++;
        bump('Ssm.ThrottlingException', log.errors);
        throw awsError('Ssm.ThrottlingException', 'Rate exceeded (SendCommand)');
      }
      await this.clock.sleep(this.seconds(hostLatency.ssmDelivery));
      let answer: Json = {};
      if (command === 'begin') {
        const fast = (parameters.fast?.[0] ?? 'true') === 'true';
        await this.clock.sleep(
          this.seconds(fast ? hostLatency.fastCheckpoint : hostLatency.spreadCheckpoint),
        );
        times.backupModeFrom = this.clock.now;
        answer = { startLsn: '0/2000028', holderPid: 4242 };
      } else if (command === 'end') {
        await this.clock.sleep(this.seconds(hostLatency.stopAndArchive));
        times.backupModeTo = this.clock.now;
        answer = { stopLsn: '0/2000138' };
      } else {
        await this.clock.sleep(this.seconds(hostLatency.abort));
        if (times.backupModeFrom !== undefined && times.backupModeTo === undefined)
          times.backupModeTo = this.clock.now;
        answer = { aborted: true };
      }
      // The agent answers with its task token; a throttled answer is retried by the agent's SDK.
      for (let attempt = 0; ; attempt++) {
        bump('SFN:SendTaskSuccess');
        try {
          this.sfn.answer('SendTaskSuccess', {});
          break;
        } catch (error) {
          bump((error as Error).name, log.errors);
          if (attempt >= 5) throw error;
          await this.clock.sleep(this.draw.uniform(0, 2 ** attempt * 100));
        }
      }
      return answer;
    };
  }
}
