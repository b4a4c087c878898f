-- wrk script for mixed.sh: issue 17's mixed load on the `bench` dataset (keys
-- k000000000 … of generate_rows, ROWS of them): of every 100 requests, 50 cached
-- aggregates, 30 record pages (v2, after a random key), 15 single records and 5 small
-- imports (5 rows updating random keys, answered 202 and processed in the background).
-- Statuses other than 2xx are counted per status and printed at the end.
local rows = tonumber(os.getenv("ROWS"))
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  bad = {}
  imports = 0
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", string.byte(c)) end))
end

local function key()
  return string.format("k%09d", math.random(0, rows - 1))
end

local aggregate = "/v1/datasets/bench/aggregate?measure=value&group_by=group"
local csv = { ["Content-Type"] = "text/csv" }

function request()
  local r = math.random(100)
  if r <= 50 then
    return wrk.format("GET", aggregate)
  elseif r <= 80 then
    return wrk.format("GET", "/v2/datasets/bench/records?limit=50&cursor=" .. hex("records\nbench\n" .. key()))
  elseif r <= 95 then
    return wrk.format("GET", "/v1/datasets/bench/records/" .. key())
  else
    imports = imports + 1
    local body = { "id,group,value,note" }
    for i = 1, 5 do
      local n = math.random(0, rows - 1)
      body[#body + 1] = string.format("k%09d,g%d,%d.%d,mixed %d", n, n % 20, math.random(0, 999), math.random(0, 9), math.random(1e9))
    end
    return wrk.format("POST", "/v1/datasets/bench/imports", csv, table.concat(body, "\n") .. "\n")
  end
end

function response(status, headers, body)
  if status >= 300 then
    bad[status] = (bad[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local statuses, sent = {}, 0
  for _, thread in ipairs(threads) do
    sent = sent + (thread:get("imports") or 0)
    local b = thread:get("bad")
    for status, n in pairs(b or {}) do statuses[status] = (statuses[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(statuses) do parts[#parts + 1] = status .. ": " .. n end
  io.write(string.format("imports sent: %d\n", sent))
  io.write(string.format("statuses other than 2xx: %s\n", #parts > 0 and table.concat(parts, ", ") or "none"))
  io.write(string.format("errors (connect, read, write, timeout): %d, %d, %d, %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
