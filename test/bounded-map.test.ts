import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../src/lib/bounded-map.js';

describe('BoundedMap', () => {
  it('drops the oldest entry when a new key would exceed the capacity, and keeps replaced keys in place', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3);
    expect(map.size).toBe(2);
    map.set('c', 4);
    expect([map.get('a'), map.get('b'), map.get('c')]).toEqual([undefined, 2, 4]);
    map.delete('b');
    expect(map.size).toBe(1);
  });

  it('refuses a capacity below one', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
  });
});
