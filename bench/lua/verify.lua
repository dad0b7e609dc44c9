-- wrk script of bench/verify.py: POST /v1/pins/verify with the bodies of a file, one JSON
-- body per line (PIN, full name and birth date of issued records), taken in turn.
--
--   wrk -t2 -c32 -d20s -s bench/lua/verify.lua -H "Authorization: Bearer $TOKEN" \
--       http://127.0.0.1:PORT/v1/pins/verify -- BODIES_FILE
--
-- done() prints one line "WRK_JSON {...}" as bench/lua/issue.lua does.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local bodies = {}
local counter = 0
c201, c200, c4xx, c5xx, cother = 0, 0, 0, 0, 0
err_sample = ""

function init(args)
  for line in io.lines(args[1]) do
    table.insert(bodies, line)
  end
  counter = (tid or 0) * 7919
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end

function response(status, headers, resp_body)
  if status == 200 then
    c200 = c200 + 1
    return
  elseif status == 201 then
    c201 = c201 + 1
  elseif status >= 500 then
    c5xx = c5xx + 1
  elseif status >= 400 then
    c4xx = c4xx + 1
  else
    cother = cother + 1
  end
  if status ~= 200 and err_sample == "" then
    err_sample = status .. " " .. string.sub(resp_body or "", 1, 300)
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local keys = {"c201", "c200", "c4xx", "c5xx", "cother"}
  local t = {c201 = 0, c200 = 0, c4xx = 0, c5xx = 0, cother = 0}
  local sample = ""
  for _, thread in ipairs(threads) do
    for _, k in ipairs(keys) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
    local s = thread:get("err_sample")
    if sample == "" and s ~= nil then sample = s end
  end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"status":{"201":%d,"200":%d,"4xx":%d,"5xx":%d,"other":%d},'
    .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
    .. '"p50":%d,"p90":%d,"p99":%d,"p99_9":%d},"error_sample":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    t.c201, t.c200, t.c4xx, t.c5xx, t.cother,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), json_string(sample)))
end
