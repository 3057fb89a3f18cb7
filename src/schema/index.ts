import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder.js';
import './revoke-connections.js';
import './scalars.js';
import './start-tasks.js';
import './task.js';
import './task-event.js';
import './task-kind.js';
import './viewer.js';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

/** The public GraphQL schema; `schema.graphql` is printed from it. */
export const schema = lexicographicSortSchema(builder.toSchema());
