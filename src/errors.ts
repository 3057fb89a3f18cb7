/**
 * @deprecated The two kinds of errors now live apart: the domain's classes in
 * `./tasks/errors.js`, the client errors and their codes in `./graphql/error-mapper.js`. This
 * re-export only keeps the remaining importers compiling until they move; then delete it.
 */
export { clientError, ErrorCode } from './graphql/error-mapper.js';
export { CursorExpiredError, InvalidCursorError } from './tasks/errors.js';
