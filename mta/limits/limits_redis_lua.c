/* SPDX-License-Identifier: ISC */
/*
 * limits_redis_lua.c - the GCRA of gcra.c as a Redis Lua script, so a
 * shared limit means exactly what a local one does. Read-only data.
 *
 * KEYS: one per limit. ARGV[1]: the units asked; then per key its
 * emission interval and burst (us, units). The clock is Redis's (TIME),
 * in us: one clock for every node. Each key's TAT is a string that
 * expires when the key is idle again (a fresh key is the same), so
 * Redis keeps only the keys active within one burst. Every key is
 * charged on its own, as limits_take does. Returns 0, or the index
 * (1-based) of the first key that refused. Lua numbers are doubles:
 * exact for microsecond times well past 2200.
 *
 * limits_redis_lease_lua: connection leases, one sorted set per key
 * (member: the lease id, score: when it expires, ms of Redis's clock).
 * KEYS: one per limit; ARGV: the lease id, its ttl (ms), then each key's
 * max. Expired leases are dropped first; then all or none are taken:
 * returns 0, or the index of the first key already at its max. A set
 * expires with its last lease, so a node that died leaves nothing behind
 * for longer than a ttl.
 */
#include "limits/limits_redis.h"

const char limits_redis_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local n = tonumber(ARGV[1])\n"
    "local refused = 0\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local iv = tonumber(ARGV[2 * i])\n"
    "  local burst = tonumber(ARGV[2 * i + 1])\n"
    "  local tat = tonumber(redis.call('GET', k) or '0')\n"
    "  local base = tat > now and tat or now\n"
    "  local nxt = base + n * iv\n"
    "  if nxt - now <= burst * iv or (tat <= now and n > burst) then\n"
    "    if nxt > now then\n"
    "      redis.call('SET', k, string.format('%.0f', nxt), 'PX',\n"
    "        math.floor((nxt - now) / 1000) + 1)\n"
    "    end\n"
    "  elseif refused == 0 then\n"
    "    refused = i\n"
    "  end\n"
    "end\n"
    "return refused\n";

const char limits_redis_lease_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[2])\n"
    "for i, k in ipairs(KEYS) do\n"
    "  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"
    "  if redis.call('ZCARD', k) >= tonumber(ARGV[2 + i]) then\n"
    "    return i\n"
    "  end\n"
    "end\n"
    "for i, k in ipairs(KEYS) do\n"
    "  redis.call('ZADD', k, now + ttl, ARGV[1])\n"
    "  redis.call('PEXPIRE', k, ttl)\n"
    "end\n"
    "return 0\n";
