import {
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLIncludeDirective,
  type GraphQLObjectType,
  type GraphQLSchema,
  GraphQLSkipDirective,
  getDirectiveValues,
  isAbstractType,
  Kind,
  type SelectionSetNode,
} from 'graphql';

/** What deciding a selection set's fields needs: the operation's variables and fragments. */
export interface CollectionScope {
  readonly schema: GraphQLSchema;
  readonly variables: Record<string, unknown>;
  readonly fragments: Record<string, FragmentDefinitionNode>;
}

/** graphql-js's field collection, with `@skip`/`@include` decided once for the operation's variables. */
export function collectFields(
  compilation: CollectionScope,
  type: GraphQLObjectType,
  selectionSet: SelectionSetNode,
  fields: Map<string, FieldNode[]>,
  visitedFragments: Set<string>,
): void {
  const { schema } = compilation;
  for (const selection of selectionSet.selections) {
    if (!shouldInclude(compilation, selection)) continue;
    switch (selection.kind) {
      case Kind.FIELD: {
        const key = selection.alias?.value ?? selection.name.value;
        const existing = fields.get(key);
        if (existing) existing.push(selection);
        else fields.set(key, [selection]);
        break;
      }
      case Kind.INLINE_FRAGMENT: {
        const condition = selection.typeCondition?.name.value;
        if (condition !== undefined && !appliesTo(schema, condition, type)) continue;
        collectFields(compilation, type, selection.selectionSet, fields, visitedFragments);
        break;
      }
      case Kind.FRAGMENT_SPREAD: {
        const name = selection.name.value;
        if (visitedFragments.has(name)) continue;
        visitedFragments.add(name);
        const fragment = compilation.fragments[name];
        if (!fragment || !appliesTo(schema, fragment.typeCondition.name.value, type)) continue;
        collectFields(compilation, type, fragment.selectionSet, fields, visitedFragments);
        break;
      }
    }
  }
}

function shouldInclude(compilation: CollectionScope, node: SelectionSetNode['selections'][number]): boolean {
  const skip = getDirectiveValues(GraphQLSkipDirective, node, compilation.variables);
  if (skip?.['if'] === true) return false;
  const include = getDirectiveValues(GraphQLIncludeDirective, node, compilation.variables);
  return include?.['if'] !== false;
}

function appliesTo(schema: GraphQLSchema, condition: string, type: GraphQLObjectType): boolean {
  if (condition === type.name) return true;
  const conditionType = schema.getType(condition);
  return isAbstractType(conditionType) && schema.isSubType(conditionType, type);
}
