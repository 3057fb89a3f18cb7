import {
  defaultFieldResolver,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLFieldResolver,
  GraphQLIncludeDirective,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  GraphQLSkipDirective,
  getArgumentValues,
  getDirectiveValues,
  getOperationAST,
  getVariableValues,
  isAbstractType,
  isLeafType,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

/**
 * Executes a subscription's selection set against one event. Returns `null` when the event does not
 * complete cleanly (a resolver threw or returned a promise, a non-null field was null, a value did
 * not serialize): the caller then runs graphql-js's `execute`, whose result, errors included, is
 * the reference.
 */
export type EventExecutor = (event: unknown) => ExecutionResult | null;

/** Returned by a step that cannot complete its value cleanly. */
const FAIL: unique symbol = Symbol('fail');
type Completed = unknown | typeof FAIL;

/** How one response key's value is made. */
interface FieldPlan {
  readonly key: string;
  /** `__typename` of this type, or null for a resolved field. */
  readonly typename: string | null;
  readonly resolve: GraphQLFieldResolver<unknown, unknown> | undefined;
  readonly args: Record<string, unknown>;
  readonly info: GraphQLResolveInfo | undefined;
  readonly complete: (value: unknown) => Completed;
}

interface Compilation {
  readonly args: ExecutionArgs;
  readonly operation: OperationDefinitionNode;
  readonly variables: Record<string, unknown>;
  readonly fragments: Record<string, FragmentDefinitionNode>;
  /** The event being executed, for `info.rootValue`. */
  current: unknown;
}

class Unsupported extends Error {}

/**
 * Compiles the selection set of a subscription operation once, for the operation's variables, so
 * that each event costs only its resolvers and serializers: no execution context, variable
 * coercion, argument coercion or field collection per event. Supports what the result types of
 * this schema's subscriptions use (object, leaf and list types, fragments, `@skip`/`@include`,
 * `__typename`); returns `null` for an operation that needs more (abstract types, lists of objects),
 * which graphql-js then executes per event.
 */
export function compileEventExecutor(args: ExecutionArgs): EventExecutor | null {
  const operation = getOperationAST(args.document, args.operationName);
  const rootType = args.schema.getSubscriptionType();
  if (operation?.operation !== 'subscription' || !rootType) return null;
  const coerced = getVariableValues(
    args.schema,
    operation.variableDefinitions ?? [],
    args.variableValues ?? {},
  );
  if (coerced.errors) return null;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const definition of args.document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
  }
  const compilation: Compilation = {
    args,
    operation,
    variables: coerced.coerced,
    fragments,
    current: undefined,
  };
  let plans: readonly FieldPlan[];
  try {
    plans = compileSelection(compilation, rootType, [operation.selectionSet], undefined);
  } catch (error) {
    if (error instanceof Unsupported) return null;
    throw error;
  }
  const context = args.contextValue;
  return (event) => {
    compilation.current = event;
    const data = runPlans(plans, event, context);
    return data === FAIL ? null : { data: data as Record<string, unknown> };
  };
}

function runPlans(plans: readonly FieldPlan[], source: unknown, context: unknown): Completed {
  const data: Record<string, unknown> = {};
  for (const plan of plans) {
    if (plan.typename !== null) {
      data[plan.key] = plan.typename;
      continue;
    }
    let value: unknown;
    try {
      value = plan.resolve?.(source, plan.args, context, plan.info as GraphQLResolveInfo);
    } catch {
      return FAIL;
    }
    const completed = plan.complete(value);
    if (completed === FAIL) return FAIL;
    data[plan.key] = completed;
  }
  return data;
}

type Path = GraphQLResolveInfo['path'];

function compileSelection(
  compilation: Compilation,
  type: GraphQLObjectType,
  selectionSets: readonly SelectionSetNode[],
  path: Path | undefined,
): FieldPlan[] {
  const fields = new Map<string, FieldNode[]>();
  for (const selectionSet of selectionSets) collectFields(compilation, type, selectionSet, fields, new Set());
  const plans: FieldPlan[] = [];
  for (const [key, nodes] of fields) {
    const node = nodes[0] as FieldNode;
    const name = node.name.value;
    if (name === '__typename') {
      plans.push({
        key,
        typename: type.name,
        resolve: undefined,
        args: {},
        info: undefined,
        complete: () => type.name,
      });
      continue;
    }
    const field = type.getFields()[name];
    if (!field) throw new Unsupported(`no field ${name}`);
    const fieldPath: Path = { prev: path, key, typename: type.name };
    const { schema } = compilation.args;
    const info: GraphQLResolveInfo = {
      fieldName: name,
      fieldNodes: nodes,
      returnType: field.type,
      parentType: type,
      path: fieldPath,
      schema,
      fragments: compilation.fragments,
      get rootValue() {
        return compilation.current;
      },
      operation: compilation.operation,
      variableValues: compilation.variables,
    };
    plans.push({
      key,
      typename: null,
      resolve: field.resolve ?? defaultFieldResolver,
      args: getArgumentValues(field, node, compilation.variables),
      info,
      complete: compileCompletion(compilation, field.type, nodes, fieldPath, false),
    });
  }
  return plans;
}

function compileCompletion(
  compilation: Compilation,
  type: GraphQLOutputType,
  nodes: readonly FieldNode[],
  path: Path,
  inList: boolean,
): (value: unknown) => Completed {
  if (type instanceof GraphQLNonNull) {
    const inner = compileCompletion(compilation, type.ofType, nodes, path, inList);
    return (value) => (value === null || value === undefined ? FAIL : inner(value));
  }
  if (type instanceof GraphQLList) {
    const item = compileCompletion(compilation, type.ofType, nodes, path, true);
    return (value) => {
      if (value === null || value === undefined) return null;
      if (!Array.isArray(value)) return FAIL;
      const items: unknown[] = new Array(value.length);
      for (let index = 0; index < value.length; index++) {
        const completed = item(value[index]);
        if (completed === FAIL) return FAIL;
        items[index] = completed;
      }
      return items;
    };
  }
  if (isLeafType(type)) {
    return (value) => {
      if (value === null || value === undefined) return null;
      try {
        const serialized = type.serialize(value);
        return serialized === undefined ? FAIL : serialized;
      } catch {
        return FAIL;
      }
    };
  }
  // An item of a list of objects has the item's index in its path: graphql-js builds those.
  if (!(type instanceof GraphQLObjectType) || inList)
    throw new Unsupported('abstract type or list of objects');
  const subSelections = nodes.flatMap((node) => (node.selectionSet ? [node.selectionSet] : []));
  const plans = compileSelection(compilation, type, subSelections, path);
  // graphql-js checks isTypeOf with the parent field's info: leave such types to it.
  if (type.isTypeOf) throw new Unsupported('isTypeOf');
  const context = compilation.args.contextValue;
  return (value) => {
    if (value === null || value === undefined) return null;
    return runPlans(plans, value, context);
  };
}

/** graphql-js's field collection, with `@skip`/`@include` decided once for the operation's variables. */
function collectFields(
  compilation: Compilation,
  type: GraphQLObjectType,
  selectionSet: SelectionSetNode,
  fields: Map<string, FieldNode[]>,
  visitedFragments: Set<string>,
): void {
  const { schema } = compilation.args;
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

function shouldInclude(compilation: Compilation, node: SelectionSetNode['selections'][number]): boolean {
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
