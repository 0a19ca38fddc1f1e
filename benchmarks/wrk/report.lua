-- Shared by every brink wrk script: counts responses by status in each thread and, when wrk is
-- done, prints one line "BRINK_WRK {json}" that benchmarks/wrk_runner.py parses.
-- Loaded with require("report") (LUA_PATH points here); defines wrk's setup/response/done hooks.

local threads = {}

-- Per-thread globals (each wrk thread has its own Lua state); read back with thread:get().
ok = 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

local function json_counts(counts)
  local parts = {}
  for key, count in pairs(counts) do
    table.insert(parts, string.format('"%s":%d', key, count))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local total_ok, non2xx = 0, {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    for key, count in pairs(thread:get("statuses")) do
      non2xx[key] = (non2xx[key] or 0) + count
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BRINK_WRK {"duration_us":%d,"requests":%d,"ok":%d,"non2xx":%s,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, total_ok, json_counts(non2xx),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
