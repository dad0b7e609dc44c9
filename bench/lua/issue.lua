-- wrk script of bench/issuance.py: POST /v1/pins, a new birth registration per request.
--
--   wrk -t2 -c32 -d20s -s bench/lua/issue.lua -H "Authorization: Bearer $TOKEN" \
--       http://127.0.0.1:PORT/v1/pins -- RUN_ID
--
-- With a second argument `osia` (bench/osia.py) the same registrations are sent as OSIA
-- generateUIN requests instead: POST /osia/v1/uin?transactionId=<the number>, flat attributes,
-- answered 200 "PIN" (counted as c201: every request is a new registration).
--
-- Every request carries a unique registration.number ("RUN_ID-t<thread>-<n>"), so none is an
-- idempotent replay. Sex and birth year (1930-2025) vary with a multiplicative hash of the
-- request number, so PINs spread over the 192 (052, G, YY) buckets; registered_on is a few days
-- after the birth (always in the past, province 052 valid on it). bench/issuance.py builds its
-- batch lines with the same arithmetic (make_line). done() prints one line
-- "WRK_JSON {...}": response counts by status and wrk's latency percentiles in microseconds.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local FAMILY = {"Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ",
                "Hồ", "Ngô", "Dương", "Lý"}
local MIDDLE = {M = {"Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh"},
                F = {"Thị", "Ngọc", "Thu", "Minh", "Kim", "Thanh"}}
local GIVEN = {M = {"Hùng", "Dũng", "Nam", "Long", "Tuấn", "Khoa", "Phúc", "Bảo", "Huy"},
               F = {"Lan", "Anh", "Hoa", "Mai", "Linh", "Trang", "Vy", "Ngân", "Hương"}}
local COMMUNE = {"Nhơn Lý", "Ghềnh Ráng", "Quang Trung", "Nhơn Hội", "Tam Quan", "Bồng Sơn",
                 "Phù Cát", "Tây Sơn", "Vĩnh Thạnh", "An Nhơn", "Hoài Nhơn"}

local TEMPLATE = '{"registration":{"authority":"UBND xã %s, Bình Định","number":"%s",'
  .. '"book":"%02d/%04d","registered_on":"%04d-%02d-%02d","province_code":"052"},'
  .. '"child":{"full_name":"%s","other_names":[],"sex":"%s","date_of_birth":"%04d-%02d-%02d",'
  .. '"place_of_birth":"Trạm y tế xã %s","home_town":"%s, Bình Định","ethnicity":"Kinh",'
  .. '"nationality":"VN"},'
  .. '"father":{"full_name":"%s","pin":"%s","nationality":"VN"},'
  .. '"mother":{"full_name":"%s","pin":"%s","nationality":"VN"}}'

local OSIA_TEMPLATE = '{"registrationAuthority":"UBND xã %s, Bình Định","registrationNumber":"%s",'
  .. '"registrationBook":"%02d/%04d","registrationDate":"%04d-%02d-%02d",'
  .. '"registrationProvince":"052","fullName":"%s","gender":%d,"dateOfBirth":"%04d-%02d-%02d",'
  .. '"placeOfBirth":"Trạm y tế xã %s","homeTown":"%s, Bình Định","ethnicity":"Kinh",'
  .. '"nationality":"VN","fatherFullName":"%s","fatherUin":"%s","motherFullName":"%s","motherUin":"%s"}'

local function pick(list, i)
  return list[(i % #list) + 1]
end

local function name(h, sex)
  return pick(FAMILY, h) .. " " .. pick(MIDDLE[sex], math.floor(h / 7)) .. " "
    .. pick(GIVEN[sex], math.floor(h / 131))
end

-- A number of the run id (same as run_seed() in bench/issuance.py).
function run_seed(run)
  local seed = 0
  for i = 1, #run do
    seed = (seed * 31 + string.byte(run, i)) % 1000003
  end
  return seed
end

-- Same arithmetic as make_line() in bench/issuance.py (exact in doubles: n < 2^21).
-- The mother's PIN differs per (run, stream, n): every request is another child, so the
-- duplicate check (contract 9) runs its lookup and finds nothing, in every phase of a run.
local function body(n, stream, run, osia)
  local h = (n * 2654435761 + stream * 40503) % 4294967296
  local year = 1930 + h % 96
  local month = 1 + math.floor(h / 96) % 12
  local day = 1 + math.floor(h / 1152) % 20
  local sex = (math.floor(h / 23040) % 2 == 0) and "M" or "F"
  local commune = pick(COMMUNE, math.floor(h / 46080))
  local father_year = year - 22 - h % 15
  local g = father_year >= 2000 and 2 or 0
  local father_pin = string.format("052%d%02d%06d", g, father_year % 100, h % 1000000)
  local number = run .. "-t" .. stream .. "-" .. n
  local mother_pin = string.format("052%09d", (seed * 7919 + stream * 1000003 + n) % 1000000000)
  if osia then
    return string.format(OSIA_TEMPLATE, commune, number, month, year, year, month,
      day + n % 8, name(h, sex), sex == "M" and 1 or 2, year, month, day, commune, commune,
      name(math.floor(h / 3), "M"), father_pin, name(math.floor(h / 5), "F"), mother_pin), number
  end
  return string.format(TEMPLATE, commune, number, month, year,
    year, month, day + n % 8, name(h, sex), sex, year, month, day, commune, commune,
    name(math.floor(h / 3), "M"), father_pin, name(math.floor(h / 5), "F"), mother_pin), number
end

local counter = 0
c201, c200, c4xx, c5xx, cother = 0, 0, 0, 0, 0
err_sample = ""

function init(args)
  run_id = args[1] or "wrk"
  osia = args[2] == "osia"
  seed = run_seed(run_id)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local payload, number = body(counter, tid, run_id, osia)
  if osia then
    return wrk.format(nil, "/osia/v1/uin?transactionId=" .. number, nil, payload)
  end
  return wrk.format(nil, nil, nil, payload)
end

function response(status, headers, resp_body)
  if status == 201 or (osia and status == 200) then
    c201 = c201 + 1
    return
  elseif status == 200 then
    c200 = c200 + 1
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
