import { describe } from 'vitest';
import { MemoryBudgetStore } from '#domain/budget/semaphore';
import { budgetContract } from '../support/budget-contract.ts';

describe('the budget semaphore in memory', () => {
  const store = new MemoryBudgetStore();
  budgetContract(() => store);
});
