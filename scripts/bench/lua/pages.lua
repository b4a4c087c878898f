-- wrk script for pages.sh: each request is one page of 50 records at a random place in
-- the `bench` dataset (keys k000000000 … of generate_rows). MODE (environment):
--   v2: a keyset page after a random key (the cursor is hex of "records\nbench\n<key>");
--   v1: a page at a random offset, up to ROWS - 50;
--   v1_front: a page at a random offset up to 10,000.
local rows = tonumber(os.getenv("ROWS"))
local mode = os.getenv("MODE") or "v2"
local counter = 0

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", string.byte(c)) end))
end

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  if mode == "v2" then
    local key = string.format("k%09d", math.random(0, rows - 1))
    return wrk.format("GET", "/v2/datasets/bench/records?limit=50&cursor=" .. hex("records\nbench\n" .. key))
  elseif mode == "v1_front" then
    return wrk.format("GET", "/v1/datasets/bench/records?limit=50&offset=" .. math.random(0, 10000))
  else
    return wrk.format("GET", "/v1/datasets/bench/records?limit=50&offset=" .. math.random(0, rows - 50))
  end
end
