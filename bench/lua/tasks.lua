-- The authenticated task workloads. Arguments (after `--`):
--   workload  get | list | put | post
--   mode      bearer (Authorization: Bearer <token>) | identity (X-User-Id, straight into task-svc)
--   data      file of "token user_id task_id" lines (many users, several tasks each)
-- Each request picks a random (token, task) pair, so tokens and ids spread over all users.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local rows, workload, mode
local statuses_wanted = os.getenv("BENCH_COUNT_STATUSES") == "1"
local put_bodies = {
   '{"status":"in_progress","priority":"high"}',
   '{"status":"completed","description":"done by the benchmark"}',
   '{"status":"pending","priority":"low","due_date":"2027-01-15"}',
}
local post_body = '{"title":"benchmark task","description":"created under load","priority":"medium","due_date":"2027-03-01"}'

function init(args)
   workload, mode = args[1], args[2]
   assert(workload == "get" or workload == "list" or workload == "put" or workload == "post", "workload")
   assert(mode == "bearer" or mode == "identity", "mode")
   rows = read_rows(args[3])
   seed_random()
   statuses = {}
end

function request()
   local row = rows[math.random(#rows)]
   local headers = {}
   if mode == "bearer" then
      headers["Authorization"] = "Bearer " .. row[1]
   else
      headers["X-User-Id"] = row[2]
   end
   if workload == "get" then
      return wrk.format("GET", "/tasks/" .. row[3], headers)
   elseif workload == "list" then
      return wrk.format("GET", "/tasks", headers)
   elseif workload == "put" then
      headers["Content-Type"] = "application/json"
      return wrk.format("PUT", "/tasks/" .. row[3], headers, put_bodies[math.random(#put_bodies)])
   else
      headers["Content-Type"] = "application/json"
      return wrk.format("POST", "/tasks", headers, post_body)
   end
end

-- Paced mode (BENCH_DELAY_MS): each connection waits this long after every answer, so the
-- offered load is fixed (about connections / (delay + latency)) and the same for every path,
-- far below saturation: latency there is the path's own, not queueing.
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace then
   function delay()
      return pace
   end
end

if statuses_wanted then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end
