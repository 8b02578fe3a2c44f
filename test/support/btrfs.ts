/**
 * btrfs volumes for tests. Without root, losetup or btrfs-progs a test that
 * needs them is skipped loudly on a developer machine, and fails in CI, which has them.
 */
export * from '../../local/btrfs-volumes.ts';
