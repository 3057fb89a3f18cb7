import { buildSchema, GraphQLError, graphql } from 'graphql';
import { describe, expect, it, vi } from 'vitest';
import { clientError, createMaskError, ErrorCode, toClientError } from '../src/graphql/error-mapper.js';
import type { Logger } from '../src/logger.js';
import {
  ConflictError,
  CursorExpiredError,
  ForbiddenError,
  InvalidCursorError,
  InvalidInputError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
  UnavailableError,
} from '../src/tasks/errors.js';

function recordingLogger() {
  const error = vi.fn<Logger['error']>();
  const logger: Logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error };
  return { logger, error };
}

/** The error a resolver throwing `thrown` leaves in the result, as graphql-js wraps it. */
async function wrappedByGraphQL(thrown: Error): Promise<GraphQLError> {
  const schema = buildSchema('type Task { status: String } type Query { task: Task }');
  const result = await graphql({
    schema,
    source: '{\n  task {\n    status\n  }\n}',
    rootValue: {
      task: () => ({
        status: () => {
          throw thrown;
        },
      }),
    },
  });
  const [error] = result.errors ?? [];
  if (!error) throw new Error('expected an error');
  return error;
}

describe('toClientError', () => {
  it.each([
    [
      'UnauthenticatedError',
      new UnauthenticatedError(),
      'Authentication required: send "Authorization: Bearer <token>" (graphql-ws: connectionParams.authorization)',
      { code: 'UNAUTHENTICATED', http: { status: 401 } },
    ],
    [
      'ForbiddenError',
      new ForbiddenError('user a may not access the tasks of user b'),
      'user a may not access the tasks of user b',
      { code: 'FORBIDDEN' },
    ],
    ['NotFoundError', new NotFoundError('t-1'), 'no task with id "t-1"', { code: 'NOT_FOUND', id: 't-1' }],
    [
      'ConflictError with a status',
      new ConflictError('cannot cancel task t-1: it is already SUCCEEDED', { status: 'SUCCEEDED' }),
      'cannot cancel task t-1: it is already SUCCEEDED',
      { code: 'CONFLICT', status: 'SUCCEEDED' },
    ],
    [
      'ConflictError with a task id',
      new ConflictError('idempotencyKey "k" was already used for task t-1', { taskId: 't-1' }),
      'idempotencyKey "k" was already used for task t-1',
      { code: 'CONFLICT', taskId: 't-1' },
    ],
    [
      'RateLimitedError',
      new RateLimitedError('startTask: at most 3 per minute per user; retry in 2 s', 1_200, 'startTask'),
      'startTask: at most 3 per minute per user; retry in 2 s',
      {
        code: 'RATE_LIMITED',
        retryAfter: 2,
        limit: 'startTask',
        http: { status: 429, headers: { 'retry-after': '2' } },
      },
    ],
    [
      'UnavailableError',
      new UnavailableError('the task store cannot write: the disk is full', 'store', 5_000),
      'the task store cannot write: the disk is full',
      {
        code: 'SERVICE_UNAVAILABLE',
        retryAfter: 5,
        part: 'store',
        http: { status: 503, headers: { 'retry-after': '5' } },
      },
    ],
    [
      'InvalidInputError with the known kinds',
      new InvalidInputError('kind', 'unknown task kind "nope"', { knownKinds: ['sleep', 'echo'] }),
      'kind: unknown task kind "nope"',
      { code: 'BAD_USER_INPUT', field: 'kind', knownKinds: ['sleep', 'echo'] },
    ],
    [
      'InvalidInputError with problems',
      new InvalidInputError('input.ms', 'too big', {
        problems: [{ path: 'input.ms', message: 'too big' }],
      }),
      'input.ms: too big',
      { code: 'BAD_USER_INPUT', field: 'input.ms', problems: [{ path: 'input.ms', message: 'too big' }] },
    ],
    [
      'CursorExpiredError',
      new CursorExpiredError('cursor 3 is outside the retained event log', { cursor: '3' }),
      'cursor 3 is outside the retained event log; reconcile with the tasks query and subscribe again without "after"',
      { code: 'CURSOR_EXPIRED', cursor: '3' },
    ],
    [
      'InvalidCursorError',
      new InvalidCursorError('not an event cursor: "x"'),
      'not an event cursor: "x"',
      { code: 'BAD_USER_INPUT' },
    ],
  ])('should map %s to its message, code and extensions', (_name, error, message, extensions) => {
    const mapped = toClientError(error);
    expect(mapped).toBeInstanceOf(GraphQLError);
    expect(mapped?.message).toBe(message);
    expect(mapped?.extensions).toEqual(extensions);
  });

  it('should give at least one whole second of Retry-After', () => {
    const mapped = toClientError(new RateLimitedError('slow down', 10, 'startTask'));
    expect(mapped?.extensions).toMatchObject({
      retryAfter: 1,
      http: { status: 429, headers: { 'retry-after': '1' } },
    });
  });

  it('should keep the path and locations of the GraphQLError graphql-js wrapped a domain error in', async () => {
    const wrapped = await wrappedByGraphQL(new NotFoundError('t-1'));
    const mapped = toClientError(wrapped);
    expect(mapped?.toJSON()).toEqual({
      message: 'no task with id "t-1"',
      locations: [{ line: 3, column: 5 }],
      path: ['task', 'status'],
      extensions: { code: 'NOT_FOUND', id: 't-1' },
    });
  });

  it('should leave anything but a domain error unmapped', async () => {
    expect(toClientError(new Error('boom'))).toBeNull();
    expect(toClientError('boom')).toBeNull();
    expect(toClientError(clientError(ErrorCode.Forbidden, 'no'))).toBeNull();
    expect(toClientError(await wrappedByGraphQL(new Error('boom')))).toBeNull();
  });
});

describe('clientError', () => {
  it.each([
    [ErrorCode.Unauthenticated, { status: 401 }],
    [ErrorCode.RateLimited, { status: 429 }],
    [ErrorCode.ServiceUnavailable, { status: 503 }],
  ])('should give %s its HTTP status', (code, http) => {
    expect(clientError(code, 'no', { limit: 'x' }).extensions).toEqual({ code, limit: 'x', http });
  });

  it('should give other codes no HTTP status', () => {
    expect(clientError(ErrorCode.LimitExceeded, 'no', { max: 1 }).extensions).toEqual({
      code: 'LIMIT_EXCEEDED',
      max: 1,
    });
  });
});

describe('createMaskError', () => {
  it('should pass a client error as it is, thrown directly or wrapped by graphql-js', async () => {
    const { logger, error: logged } = recordingLogger();
    const maskError = createMaskError(logger);
    const born = clientError(ErrorCode.Unauthenticated, 'token expired');
    expect(maskError(born)).toBe(born);
    const wrapped = await wrappedByGraphQL(clientError(ErrorCode.Forbidden, 'no'));
    expect(maskError(wrapped)).toBe(wrapped);
    expect(logged).not.toHaveBeenCalled();
  });

  it('should map a domain error, thrown directly or wrapped by graphql-js, keeping its path', async () => {
    const { logger, error: logged } = recordingLogger();
    const maskError = createMaskError(logger);
    const direct = maskError(new CursorExpiredError('cursor 3 is outside the retained event log'));
    expect(direct.extensions).toEqual({ code: 'CURSOR_EXPIRED', cursor: null });
    const wrapped = maskError(await wrappedByGraphQL(new UnauthenticatedError()));
    expect(wrapped.path).toEqual(['task', 'status']);
    expect(wrapped.extensions).toEqual({ code: 'UNAUTHENTICATED', http: { status: 401 } });
    expect(logged).not.toHaveBeenCalled();
  });

  it('should log anything else and mask it as "Unexpected error." with INTERNAL_SERVER_ERROR', async () => {
    const { logger, error: logged } = recordingLogger();
    const maskError = createMaskError(logger);
    const boom = new Error('database is locked');
    const masked = maskError(await wrappedByGraphQL(boom));
    expect(masked.toJSON()).toEqual({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(logged).toHaveBeenCalledWith('internal error', { err: boom });
    expect(maskError('a string', 'Masked.').message).toBe('Masked.');
    expect(logged).toHaveBeenLastCalledWith('internal error', { err: 'a string' });
  });
});
