import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/backends/embedded/group-commit.js';

/** The embedded store's group commit against a real SQLite database. */

const databases: Database.Database[] = [];
afterEach(() => {
  for (const db of databases.splice(0)) db.close();
});

function database() {
  const db = new Database(':memory:');
  databases.push(db);
  db.exec('CREATE TABLE notes (text TEXT NOT NULL UNIQUE)');
  const insert = db.prepare<[string]>('INSERT INTO notes (text) VALUES (?)');
  const texts = () => db.prepare<[], { text: string }>('SELECT text FROM notes ORDER BY rowid').all();
  return { db, insert, texts: () => texts().map((row) => row.text) };
}

describe('GroupCommit', () => {
  it('runs the writes asked for in one turn in one transaction, in order, and resolves each once committed', async () => {
    const { db, insert, texts } = database();
    const commits = new GroupCommit(db);
    const seenInside: string[][] = [];
    const writes = ['a', 'b', 'c'].map((text) =>
      commits.run(() => {
        insert.run(text);
        seenInside.push(texts());
        return db.inTransaction;
      }),
    );
    // Nothing runs before the turn ends.
    expect(texts()).toEqual([]);
    expect(await Promise.all(writes)).toEqual([true, true, true]);
    // Each write saw the ones before it in the same transaction.
    expect(seenInside).toEqual([['a'], ['a', 'b'], ['a', 'b', 'c']]);
    expect(texts()).toEqual(['a', 'b', 'c']);
  });

  it('rolls back and rejects only the write that throws; the others of its group commit', async () => {
    const { db, insert, texts } = database();
    const commits = new GroupCommit(db);
    const first = commits.run(() => insert.run('kept'));
    const failing = commits.run(() => {
      insert.run('rolled back');
      insert.run('kept'); // UNIQUE: throws after its first insert
    });
    const last = commits.run(() => insert.run('also kept'));
    await expect(failing).rejects.toThrow(/UNIQUE/);
    await first;
    await last;
    expect(texts()).toEqual(['kept', 'also kept']);
  });

  it('commits what is pending when flushed directly (as before the database closes)', async () => {
    const { db, insert, texts } = database();
    const commits = new GroupCommit(db);
    const write = commits.run(() => insert.run('now'));
    commits.flush();
    expect(texts()).toEqual(['now']);
    await write;
  });

  it('rejects every write of the group when the commit itself fails, and keeps serving the next group', async () => {
    const { db, insert, texts } = database();
    const commits = new GroupCommit(db);
    db.exec('CREATE TABLE parents (id INTEGER PRIMARY KEY)');
    db.exec('CREATE TABLE children (parent INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)');
    db.pragma('foreign_keys = ON');
    // A deferred foreign key is checked at COMMIT: the whole group fails there.
    const orphan = commits.run(() => db.prepare('INSERT INTO children (parent) VALUES (42)').run());
    const innocent = commits.run(() => insert.run('in the failed group'));
    await expect(orphan).rejects.toThrow(/FOREIGN KEY/);
    await expect(innocent).rejects.toThrow(/FOREIGN KEY/);
    expect(texts()).toEqual([]);
    await commits.run(() => insert.run('next group'));
    expect(texts()).toEqual(['next group']);
  });
});
