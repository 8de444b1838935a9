-- wrk script for the throughput runs: every request a POST of BATCH new, unique alerts.
--
-- Arguments (after `--`): kind ("alertmanager" or "pagerd"), batch size, run name, token.
-- alertmanager: a JSON list, as POST /api/v2/alerts takes it (what Prometheus sends).
-- pagerd: Alertmanager's webhook payload v4 for one group, with each alert's fingerprint
-- (FNV-1a 64, as Alertmanager computes it and sends it). The labels are those of
-- bench/alerts.py: 500 groups (alertname x team), `instance` unique per alert.
-- done() prints one line "BENCH {json}" that bench/wrk.py reads.

local bit = require("bit")

local GROUPS = 500
local TEAMS = 50
local PRIME = 1099511628211ULL
local OFFSET = 14695981039346656037ULL
local GENERATOR = "http://prometheus.local/graph?g0.expr=up"

local threads = {}
local kind, batch, run
local tid = 0
local counter = 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- thread_id is the global that setup() set in this thread's Lua state.
  tid = thread_id or 0
  kind = args[1]
  batch = tonumber(args[2])
  run = args[3]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[4] ~= nil and args[4] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[4]
  end
end

local function fnv(h, text)
  for i = 1, #text do
    h = bit.bxor(h, text:byte(i)) * PRIME
  end
  return bit.bxor(h, 255) * PRIME
end

local function fingerprint(names, values)
  local h = OFFSET
  for i = 1, #names do
    h = fnv(fnv(h, names[i]), values[i])
  end
  return bit.tohex(h, 16)
end

local function alert(group, instance, starts)
  local alertname = "Bench" .. (group % 10)
  local team = "team-" .. (math.floor(group / 10) % TEAMS)
  local labels = string.format(
    '{"alertname":"%s","instance":"%s","job":"bench","severity":"warning","team":"%s"}',
    alertname, instance, team)
  if kind == "alertmanager" then
    return string.format(
      '{"labels":%s,"annotations":{"summary":"bench alert"},"startsAt":"%s",'
      .. '"generatorURL":"%s"}', labels, starts, GENERATOR)
  end
  -- Sorted by label name, as the fingerprint wants them.
  local fp = fingerprint({"alertname", "instance", "job", "severity", "team"},
                         {alertname, instance, "bench", "warning", team})
  return string.format(
    '{"status":"firing","labels":%s,"annotations":{"summary":"bench alert"},'
    .. '"startsAt":"%s","endsAt":"0001-01-01T00:00:00Z","generatorURL":"%s",'
    .. '"fingerprint":"%s"}', labels, starts, GENERATOR, fp)
end

function request()
  counter = counter + 1
  local group = counter % GROUPS
  local starts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local items = {}
  for i = 1, batch do
    local instance = string.format("%s-%d-%d-%d", run, tid, counter, i)
    items[i] = alert(group, instance, starts)
  end
  local list = "[" .. table.concat(items, ",") .. "]"
  local body = list
  if kind ~= "alertmanager" then
    local alertname = "Bench" .. (group % 10)
    local team = "team-" .. (math.floor(group / 10) % TEAMS)
    local common = string.format('{"alertname":"%s","team":"%s"}', alertname, team)
    body = string.format(
      '{"version":"4","groupKey":"{}:{alertname=\\"%s\\",team=\\"%s\\"}",'
      .. '"truncatedAlerts":0,"status":"firing","receiver":"pagerd","groupLabels":%s,'
      .. '"commonLabels":%s,"commonAnnotations":{},"externalURL":"http://127.0.0.1:9093",'
      .. '"alerts":%s}', alertname, team, common, common, list)
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"latency_p50_us":%d,"latency_p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
