export * from '../../agent/local/writer.ts';
