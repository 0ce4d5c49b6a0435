-- Printed by wrk when a run ends: exact totals for bench/measure.py (wrk's own report rounds).
-- Every request closes its connection, so each one is accepted anew (by whichever process wins).
wrk.headers["Connection"] = "close"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d %d %d\n", summary.duration, summary.bytes,
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
