/**
 * Time to full speed: a volume made from a snapshot answers at once, but
 * every block not yet fetched comes from S3 on its first read ("Full volume
 * performance is achieved only once all storage blocks have been downloaded
 * and written to the volume", Amazon EBS User Guide, *Initialize Amazon EBS
 * volumes*). With an Amazon EBS Provisioned Rate for Volume Initialization
 * (CreateVolume VolumeInitializationRate, 100–300 MiB/s) the volume is
 * initialized at that rate and DescribeVolumeStatus reports its progress and
 * estimated time (InitializationStatusDetails: progress,
 * estimatedTimeToCompleteInSeconds, the latter "only available for volumes
 * created with Amazon EBS Provisioned Rate for Volume Initialization"; "it
 * can take up to 5 minutes for the volume initialization information to be
 * updated"). Without one, "the default volume initialization rate
 * fluctuates" and AWS publishes no figure: pgsnap estimates with
 * `assumedDefaultMiBps` and says it is an estimate.
 */
import { PreconditionError } from '../errors.ts';

/** CreateVolume's VolumeInitializationRate range (EC2 API reference). */
export const initializationRateRange = { min: 100, max: 300 } as const;

/**
 * pgsnap's assumption for a volume initialized at EBS's default rate, for
 * estimates only: not an AWS figure (AWS documents none). Conservative, so
 * an estimate errs long.
 */
export const assumedDefaultMiBps = 40;

/**
 * Where the price of a provisioned rate is published: AWS bills it per GiB
 * of snapshot data initialized (Amazon EBS pricing page). pgsnap states the
 * GiB billed; the price per GiB is the operator's to read there or to pass
 * (`--initialization-price`), never a figure pgsnap makes up.
 */
export const initializationPriceSource = 'https://aws.amazon.com/ebs/pricing/';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** The model's time to full speed, from the data the volumes must fetch. */
export interface FullSpeed {
  /** Seconds from the volumes' creation until every block is on them. */
  seconds: number;
  /** The rate the figure assumes, MiB/s. */
  rateMiBps: number;
  /** `provisioned`: the rate bought; `estimate`: pgsnap's assumption for EBS's default rate. */
  basis: 'provisioned' | 'estimate';
  /** GiB initialized at a provisioned rate (what AWS bills); absent at the default rate. */
  billedGiB?: number;
  /** billedGiB × the price given, in USD, when a price was given. */
  costUsd?: number;
}

/** The model's time to full speed of `dataBytes` at a provisioned `rate`, or at the assumed default rate. */
export function modelFullSpeed(dataBytes: number, rate?: number, pricePerGiB?: number): FullSpeed {
  const rateMiBps = rate ?? assumedDefaultMiBps;
  const seconds = Math.ceil(dataBytes / (rateMiBps * MiB));
  if (rate === undefined) return { seconds, rateMiBps, basis: 'estimate' };
  const billedGiB = Math.ceil(dataBytes / GiB);
  return {
    seconds,
    rateMiBps,
    basis: 'provisioned',
    billedGiB,
    ...(pricePerGiB !== undefined ? { costUsd: Math.round(billedGiB * pricePerGiB * 100) / 100 } : {}),
  };
}

/**
 * The slowest provisioned rate that brings `dataBytes` to full speed within
 * `minutes` (each volume initializes at the rate on its own, so the largest
 * volume decides); refuses an objective that 300 MiB/s cannot meet.
 */
export function planInitializationRate(
  volumeBytes: number[],
  minutes: number,
  pricePerGiB?: number,
): FullSpeed {
  const largest = Math.max(0, ...volumeBytes);
  const needed = Math.ceil(largest / (minutes * 60 * MiB));
  if (needed > initializationRateRange.max) {
    const fastest = modelFullSpeed(largest, initializationRateRange.max).seconds;
    throw new PreconditionError(
      `full speed within ${minutes} minutes needs ${needed} MiB/s for the largest volume (${(largest / GiB).toFixed(0)} GiB); ` +
        `EBS initializes at ${initializationRateRange.max} MiB/s at most, which takes ${Math.ceil(fastest / 60)} minutes: ` +
        'give a longer objective, or restore with fast snapshot restore enabled on the snapshots',
    );
  }
  const rate = Math.max(initializationRateRange.min, needed);
  const total = volumeBytes.reduce((sum, bytes) => sum + bytes, 0);
  const plan = modelFullSpeed(largest, rate, pricePerGiB);
  const billedGiB = Math.ceil(total / GiB);
  return {
    ...plan,
    billedGiB,
    ...(pricePerGiB !== undefined ? { costUsd: Math.round(billedGiB * pricePerGiB * 100) / 100 } : {}),
  };
}

/** The time to full speed in words, for the CLI and the record's readers. */
export function describeFullSpeed(fullSpeed: FullSpeed): string {
  const minutes = Math.ceil(fullSpeed.seconds / 60);
  if (fullSpeed.basis === 'estimate') {
    return `~${minutes} min (an estimate at ${fullSpeed.rateMiBps} MiB/s, EBS's default rate, which AWS does not publish)`;
  }
  const cost =
    fullSpeed.costUsd !== undefined
      ? `$${fullSpeed.costUsd.toFixed(2)} for ${fullSpeed.billedGiB} GiB`
      : `${fullSpeed.billedGiB} GiB billed at the price on ${initializationPriceSource}`;
  return `${minutes} min at a provisioned ${fullSpeed.rateMiBps} MiB/s (${cost})`;
}
