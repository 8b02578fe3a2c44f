declare module 'asl-validator' {
  interface ValidationResult {
    isValid: boolean;
    errors: Array<Record<string, unknown>>;
    errorsText(separator?: string): string;
  }
  export default function validator(definition: unknown, options?: Record<string, unknown>): ValidationResult;
}
