import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { LimitName } from '../../observability/metrics.js';
import { ErrorCode } from '../error-mapper.js';

export interface QueryLimits {
  readonly maxDepth: number;
  readonly maxAliases: number;
  readonly maxTokens: number;
  readonly maxCost: number;
  readonly maxDirectives: number;
  /** `false` refuses `__schema` and `__type` and hides "Did you mean …" field suggestions. */
  readonly introspection: boolean;
  /** Told of each operation refused. */
  readonly onReject?: (limit: LimitName) => void;
}

/** graphql-armor prefixes its messages with "Syntax Error:" even when the syntax is fine. */
function describe(error: GraphQLError): string {
  return error.message.replace(/^Syntax Error: /, '');
}

function refusal(limit: LimitName, max: number, error: GraphQLError): GraphQLError {
  return new GraphQLError(describe(error), {
    extensions: { code: ErrorCode.BadUserInput, limit: limit.replace(/^query_/, ''), max },
  });
}

/**
 * Limits on an operation's shape, from graphql-armor, refused before execution with
 * `BAD_USER_INPUT` and `extensions.limit` (`depth`, `aliases`, `tokens`, `cost`, `directives`) and
 * `extensions.max`. Plugins of yoga's envelop, so they apply to HTTP and, through
 * `yoga.getEnveloped`, to WebSocket operations alike.
 */
export function queryLimitPlugins(limits: QueryLimits): Plugin[] {
  const { onReject } = limits;
  const reportTo =
    (limit: LimitName, max: number) => (context: ValidationContext | null, error: GraphQLError) => {
      onReject?.(limit);
      const refused = refusal(limit, max, error);
      // The token limit runs while parsing, without a validation context: its error ends the parse.
      if (context === null) throw refused;
      context.reportError(refused);
    };
  const plugins: Plugin[] = [
    EnvelopArmorPlugin({
      maxTokens: { n: limits.maxTokens, onReject: [reportTo('query_tokens', limits.maxTokens)] },
      maxDepth: {
        n: limits.maxDepth,
        propagateOnRejection: false,
        onReject: [reportTo('query_depth', limits.maxDepth)],
      },
      maxAliases: {
        n: limits.maxAliases,
        propagateOnRejection: false,
        onReject: [reportTo('query_aliases', limits.maxAliases)],
      },
      costLimit: {
        maxCost: limits.maxCost,
        propagateOnRejection: false,
        onReject: [reportTo('query_cost', limits.maxCost)],
      },
      maxDirectives: {
        n: limits.maxDirectives,
        propagateOnRejection: false,
        onReject: [reportTo('query_directives', limits.maxDirectives)],
      },
      blockFieldSuggestion: { enabled: !limits.introspection },
    }) as Plugin,
  ];
  if (!limits.introspection) {
    plugins.push({
      onValidate({ addValidationRule }) {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      },
    });
  }
  return plugins;
}
