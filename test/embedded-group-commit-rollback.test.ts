import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/backends/embedded/group-commit.js';

const databases: Database.Database[] = [];
afterEach(() => {
  for (const db of databases.splice(0)) db.close();
});

describe('GroupCommit when SQLite rolls the whole transaction back', () => {
  it('should fail every write of the group and store none of them', async () => {
    const db = new Database(':memory:');
    databases.push(db);
    db.exec('CREATE TABLE notes (text TEXT NOT NULL)');
    const insert = db.prepare<[string]>('INSERT INTO notes (text) VALUES (?)');
    const commits = new GroupCommit(db);
    const writes = [
      commits.run(() => insert.run('before')),
      // What SQLite may do on a full disk or an I/O error: roll back the whole transaction, then fail.
      commits.run(() => {
        db.exec('ROLLBACK');
        throw new Error('database or disk is full');
      }),
      commits.run(() => insert.run('after')),
    ];
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(db.prepare('SELECT text FROM notes').all()).toEqual([]);
    expect(db.inTransaction).toBe(false);
  });
});
