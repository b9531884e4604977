-- wrk script for benchmarks/serve_load.py: POST the body in $MLOPS_LR_BODY to the URL and print
-- one JSON line of results (latencies in microseconds) when the run ends. With
-- $MLOPS_LR_HEADER_LENGTH set, the body is an Open Inference Protocol binary request: its JSON
-- header is that many bytes.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local header_length = os.getenv("MLOPS_LR_HEADER_LENGTH")
if header_length then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
local file = assert(io.open(os.getenv("MLOPS_LR_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
