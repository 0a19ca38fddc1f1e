-- GET /items/{id} with a random id in 1..N per request (N = 2nd script argument, default 1000).
-- Script arguments (after "--"): seed, item count.
require("report")

local prepared = {}
local count = 1000

function init(args)
  math.randomseed(tonumber(args[1]) or os.time())
  count = tonumber(args[2]) or count
  for id = 1, count do
    prepared[id] = wrk.format("GET", "/items/" .. id)
  end
end

function request()
  return prepared[math.random(count)]
end
