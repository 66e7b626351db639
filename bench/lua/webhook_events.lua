-- wrk script: validly signed Whereby joined/left events for one meeting, signed per request.
-- Environment: WEBHOOK_SECRET, MEETING_ID, ROOM_NAME, BASE_EPOCH_MS (createdAt of event 0),
-- RUN (a number that keeps each wrk run's event ids apart from the other runs').
package.path = package.path .. ";" .. os.getenv("LUA_DIR") .. "/?.lua"
local sha = require("sha256")

local secret = os.getenv("WEBHOOK_SECRET")
local meeting_id = os.getenv("MEETING_ID")
local room_name = os.getenv("ROOM_NAME")
local base_ms = tonumber(os.getenv("BASE_EPOCH_MS"))
local run = tonumber(os.getenv("RUN"))
local sign = sha.hmac_sha256(secret)

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  total_threads = 2
end

local function iso(ms)
  local seconds = math.floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", seconds) .. string.format(".%03dZ", ms % 1000)
end

function request()
  counter = counter + 1
  -- A global sequence across threads: distinct, increasing createdAt values per event.
  local seq = counter * 8 + thread_id
  local participant = "p" .. (seq % 5)
  local kind = (seq % 3 == 0) and "left" or "joined"
  local clients = seq % 7
  local id = string.format("%08x%08x%048x", run, thread_id, seq)
  local body = string.format(
    '{"id":"%s","apiVersion":"1.0","createdAt":"%s","type":"room.client.%s","data":'
      .. '{"meetingId":"%s","roomName":"%s","roomSessionId":null,"participantId":"%s",'
      .. '"displayName":"Bench %s","externalId":null,"metadata":null,"roleName":"visitor",'
      .. '"numClients":%d,"numClientsByRoleName":{"visitor":%d},"isDialIn":false,'
      .. '"subdomain":"bench"}}',
    id, iso(base_ms + seq), kind, meeting_id, room_name, participant, participant, clients,
    clients)
  local t = tostring(os.time())
  local headers = {
    ["Content-Type"] = "application/json",
    ["Whereby-Signature"] = "t=" .. t .. ",v1=" .. sign(t .. "." .. body),
  }
  return wrk.format("POST", "/v1/whereby", headers, body)
end
