-- Print wrk's summary as one JSON line: failures and worst latency.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "latency_max_us": %d, "latency_p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency.max, latency:percentile(99)))
end
