// Tables that a token's text is looked up in (protocol, service, ICMP type,
// REJECT and LOG names...). A plain object literal inherits from
// Object.prototype, so `-p constructor` or `--dport toString` would find a
// function there and be taken for a name; these tables have no prototype,
// so every key that is not written here is simply unknown.
export function byName<T>(entries: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, entries);
}
