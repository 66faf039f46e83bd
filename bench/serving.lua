-- wrk script for bench/serving.py: POST the JSON body in the file named after `--`.
--   wrk -t1 -c16 -d20s --latency -s bench/serving.lua http://127.0.0.1:PORT/invocations -- BODY.json
-- wrk calls init() in every thread before it builds that thread's (fixed) request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
   local file = assert(io.open(args[1], "rb"), "usage: ... -- BODY.json")
   wrk.body = file:read("*a")
   file:close()
end
