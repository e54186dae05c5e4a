-- POST pre-signed webhook deliveries read from BENCH_BODIES (signature TAB event id TAB body
-- per line). Each of BENCH_THREADS threads sends its own share, each body once; a thread that
-- runs out starts over (those repeats are duplicates, answered 200 and counted apart).
local path = os.getenv("BENCH_BODIES")
local threads = tonumber(os.getenv("BENCH_THREADS"))
local counter = 0

setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

init = function(args)
  requests, index = {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % threads == tid then
      local signature, id, body = line:match("^(%S+)\t(%S+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/api/razorpay/webhook", {
        ["Content-Type"] = "application/json",
        ["X-Razorpay-Signature"] = signature,
        ["X-Razorpay-Event-Id"] = id,
      }, body)
    end
    i = i + 1
  end
end

request = function()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end
