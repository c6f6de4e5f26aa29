-- wrk: POST pre-signed Twilio webhooks, each thread cycling through its own share of them,
-- so that no two threads send the same RecordingSid.
-- Arguments after "--": the file of requests, and wrk's thread count.
-- Each line of the file: path TAB content type TAB header name TAB header value TAB body.
local count = 0

function setup(thread)
  thread:set("index", count)
  count = count + 1
end

function init(args)
  local threads = tonumber(args[2])
  shares, next_one, n = {}, 0, 0
  for line in io.lines(args[1]) do
    if n % threads == index then
      local path, content_type, name, value, body =
        line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      table.insert(shares, wrk.format("POST", path, {["Content-Type"] = content_type, [name] = value}, body))
    end
    n = n + 1
  end
end

function request()
  next_one = next_one % #shares + 1
  return shares[next_one]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
