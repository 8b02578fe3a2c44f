import { describe, expect, test } from 'vitest';
import { agentDocumentParameters } from '../../infra/backup/agent-document.ts';
import {
  customResourceRequestViolations,
  maxCustomResourceRequestBytes,
  scheduleViolations,
  taskStateViolations,
} from '../../infra/guards/aws-limits.ts';

const bounds = {
  parameters: agentDocumentParameters,
  inputMaxLength: { '$.backupId': 23, '$.cluster': 63 },
};
const sendCommand = 'arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken';

function hostStep(extra: Record<string, unknown>, parameters: Record<string, unknown> = {}) {
  return {
    States: {
      'Abort the backup on the host': {
        Type: 'Task',
        Resource: sendCommand,
        Parameters: {
          DocumentName: 'doc',
          'Comment.$': "States.Format('pgsnap {} of {}', $.backupId, $.cluster)",
          Parameters: { command: ['abort'], heartbeatSeconds: ['300'], ...parameters },
        },
        End: true,
        ...extra,
      },
    },
  };
}

describe('Task states', () => {
  test('HeartbeatSeconds equal to TimeoutSeconds is refused, naming the state and the rule', () => {
    expect(taskStateViolations(hostStep({ HeartbeatSeconds: 300, TimeoutSeconds: 300 }), bounds)).toEqual([
      'Task state "Abort the backup on the host": HeartbeatSeconds (300) must be less than TimeoutSeconds (300), ' +
        "as AWS's Task state requires",
    ]);
    expect(taskStateViolations(hostStep({ HeartbeatSeconds: 100, TimeoutSeconds: 300 }), bounds)).toEqual([]);
  });

  test('timeouts are whole numbers from 1 to 99999999, in branches too', () => {
    const definition = {
      States: {
        Both: {
          Type: 'Parallel',
          Branches: [
            { States: { Inner: { Type: 'Task', Resource: 'arn:x', TimeoutSeconds: 0, End: true } } },
          ],
          End: true,
        },
      },
    };
    expect(taskStateViolations(definition, bounds)).toEqual([
      'Task state "Inner": TimeoutSeconds (0) must be a whole number from 1 to 99999999',
    ]);
  });

  test("SendCommand's Comment is bounded by the longest backupId and cluster name, and must fit 100 characters", () => {
    expect(taskStateViolations(hostStep({}), bounds)).toEqual([]);
    expect(
      taskStateViolations(hostStep({}), { ...bounds, inputMaxLength: { '$.backupId': 23, '$.cluster': 80 } }),
    ).toEqual([
      'Task state "Abort the backup on the host": SendCommand\'s Comment can be 114 characters; SSM allows at most 100',
    ]);
    expect(taskStateViolations(hostStep({}), { ...bounds, inputMaxLength: { '$.backupId': 23 } })[0]).toMatch(
      /cannot be bounded to 100 characters: the length of \$\.cluster has no known bound/,
    );
  });

  test("SendCommand's parameters must be the document's, with fixed values it admits", () => {
    expect(taskStateViolations(hostStep({}, { command: ['restart'], verbose: ['true'] }), bounds)).toEqual([
      'Task state "Abort the backup on the host": SendCommand parameter command=restart is not one of the document\'s allowedValues',
      'Task state "Abort the backup on the host": SendCommand parameter verbose is not declared by the document',
    ]);
  });
});

describe('Scheduler schedules', () => {
  test('expressions, description and retry policy within what CreateSchedule accepts', () => {
    const ok = {
      name: 's',
      scheduleExpression: 'cron(0 3 * * ? *)',
      retryPolicy: { maximumRetryAttempts: 2 },
    };
    expect(scheduleViolations(ok)).toEqual([]);
    expect(scheduleViolations({ ...ok, scheduleExpression: 'rate(1 hour)' })).toEqual([]);
    expect(scheduleViolations({ ...ok, scheduleExpression: 'rate(0 hours)' })).toEqual([
      'Schedule "s": rate(0 hours) must be rate(value unit): a positive whole number of minutes, hours or days',
    ]);
    expect(scheduleViolations({ ...ok, scheduleExpression: 'cron(0 3 * * *)' })).toEqual([
      'Schedule "s": cron(0 3 * * *) must have six fields (minutes hours day-of-month month day-of-week year)',
    ]);
    expect(
      scheduleViolations({
        ...ok,
        description: 'x'.repeat(513),
        retryPolicy: { maximumRetryAttempts: 186, maximumEventAgeInSeconds: 30 },
      }),
    ).toEqual([
      'Schedule "s": Description is 513 characters; Scheduler allows at most 512',
      'Schedule "s": MaximumRetryAttempts (186) must be from 0 to 185',
      'Schedule "s": MaximumEventAgeInSeconds (30) must be from 60 to 86400',
    ]);
  });
});

describe('custom resource requests', () => {
  test('an update carries old and new properties: half the held payload, less the envelope, is the most', () => {
    expect(customResourceRequestViolations('Catalog', 40_000)).toEqual([]);
    const [violation] = customResourceRequestViolations('Catalog', maxCustomResourceRequestBytes / 2);
    expect(violation).toMatch(/^Catalog: an update's request .* pass the content by S3 location/);
  });
});
