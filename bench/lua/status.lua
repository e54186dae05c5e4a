-- GET payment-status for a random booking in [BENCH_LO, BENCH_HI].
local lo = tonumber(os.getenv("BENCH_LO"))
local hi = tonumber(os.getenv("BENCH_HI"))
local counter = 0

setup = function(thread)
  thread:set("seed", counter)
  counter = counter + 1
end

init = function(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

request = function()
  return wrk.format("GET", "/api/razorpay/payment-status/" .. math.random(lo, hi))
end
