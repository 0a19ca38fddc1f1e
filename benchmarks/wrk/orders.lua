-- POST /orders for a random item in 1..N, with a fresh random v4 UUID as Idempotency-Key.
-- Script arguments (after "--"): seed, item count.
require("report")

local count = 1000
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(tonumber(args[1]) or os.time())
  count = tonumber(args[2]) or count
end

local function r16()
  return math.random(0, 0xffff)
end

-- A random version-4 UUID: 122 random bits, version nibble 4, variant bits 10.
local function uuid4()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r16(), r16(), r16(), math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff),
    r16(), r16(), r16())
end

function request()
  headers["Idempotency-Key"] = uuid4()
  local body = string.format('{"item_id":%d,"quantity":1}', math.random(count))
  return wrk.format("POST", "/orders", headers, body)
end
