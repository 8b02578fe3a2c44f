export * from '../../local/writer.ts';
