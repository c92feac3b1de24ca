-- wrk script: production submissions (a profile with a list subscription, and
-- an event), half with a fresh email, half with one of 1,000 repeating ones.
-- Usage: wrk -s bench/submissions.lua URL -- PATH
local path = "/"
local counter = 0
local thread_seed = 0

function init(args)
  path = args[1] or "/"
  thread_seed = math.random(1, 1000000000)
  math.randomseed(os.time() + thread_seed)
end

request = function()
  counter = counter + 1
  local email
  if math.random() < 0.5 then
    email = string.format("fresh-%d-%d@bench.example", thread_seed, counter)
  else
    email = string.format("repeat-%d@bench.example", math.random(1, 1000))
  end
  local body = '[{"profile":{"email":"' .. email ..
    '","firstname":"Ann","lists":[{"listId":7,"subscribedTimestamp":true}]}},' ..
    '{"event":{"type":"signup","data":{"page":"/offers"}}}]'
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
