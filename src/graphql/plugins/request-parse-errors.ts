import { GraphQLError } from 'graphql';
import type { GraphQLHTTPExtensions, GraphQLParams, Plugin } from 'graphql-yoga';
import { ErrorCode } from '../error-mapper.js';

/**
 * yoga's parser messages that say nothing of the request beyond a JSON type name; kept, without
 * the rest of the error (the JSON body's `extensions.originalError` quotes the body).
 */
const FIXED_PARSER_MESSAGE =
  /^(POST body sent invalid JSON\.|POST body is expected to be object but received [a-z]+|Missing multipart form field "operations"|Multipart form field "(operations|map)" must be a (valid JSON )?string)$/;
/** For every other request that cannot be read as GraphQL parameters. */
const MALFORMED_REQUEST =
  'Malformed GraphQL request: send a JSON object with "query" and optionally "variables", "operationName", "extensions".';
const PARAMETER_NAMES = new Set(['query', 'variables', 'operationName', 'extensions']);

/** yoga's HTTP answer for a request it cannot parse (400; 200 to a client accepting only `application/json`). */
const PARSE_FAILURE_HTTP: GraphQLHTTPExtensions = { spec: true, status: 400 };

function badRequest(message: string, http: GraphQLHTTPExtensions = PARSE_FAILURE_HTTP): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.BadRequest, http } });
}

/** The parser's failure with a fixed message: the parser's own (e.g. the JSON.parse error) echoes the body. */
function withoutEcho(error: unknown): unknown {
  if (error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError')) {
    return error;
  }
  if (error instanceof GraphQLError && FIXED_PARSER_MESSAGE.test(error.message)) {
    return badRequest(error.message, error.extensions['http'] ?? PARSE_FAILURE_HTTP);
  }
  return badRequest(MALFORMED_REQUEST);
}

/** yoga refuses a batch (an array) by itself, naming nothing of it. */
function assertKnownParameters(params: GraphQLParams | GraphQLParams[]): void {
  if (Array.isArray(params) || params === null || typeof params !== 'object') return;
  for (const [name, value] of Object.entries(params)) {
    // yoga refuses these too (and skips nulls alike), but naming the parameter: the caller's text.
    if (value != null && !PARAMETER_NAMES.has(name)) throw badRequest(MALFORMED_REQUEST, { status: 400 });
  }
}

/**
 * Errors about a request that cannot be parsed never echo it: yoga's JSON parser puts the
 * `JSON.parse` message (which quotes the body) in `extensions.originalError`, the GET and form
 * parsers let a `SyntaxError` about `variables` through (answered and logged as an internal error),
 * and the parameter check names an unknown parameter. Each becomes a fixed BAD_REQUEST message,
 * HTTP 400.
 */
export function useRequestParseErrors(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (requestParser) {
        setRequestParser(async (request) => {
          try {
            return await requestParser(request);
          } catch (error) {
            throw withoutEcho(error);
          }
        });
      }
      return {
        onRequestParseDone({ requestParserResult }) {
          assertKnownParameters(requestParserResult);
        },
      };
    },
  };
}
