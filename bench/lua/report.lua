-- Shared by the bench scripts (loaded with dofile): per-thread setup and a done() that prints
-- the run's figures as one JSON line prefixed with BENCH_JSON, for the harness to parse.

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

-- Seeds the thread's generator so that threads draw different sequences.
function seed_random()
   local id = thread_id or 0
   math.randomseed(os.time() * 1000 + id * 7919)
   for _ = 1, 10 do math.random() end
end

-- Lines of whitespace-separated fields.
function read_rows(path)
   local rows = {}
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      local row = {}
      for field in line:gmatch("%S+") do table.insert(row, field) end
      if #row > 0 then table.insert(rows, row) end
   end
   f:close()
   assert(#rows > 0, "no rows in " .. path)
   return rows
end

function done(summary, latency, requests)
   local statuses = {}
   for _, t in ipairs(threads) do
      local counts = t:get("statuses")
      if counts then
         for code, n in pairs(counts) do
            local key = tostring(code)
            statuses[key] = (statuses[key] or 0) + n
         end
      end
   end
   local parts = {}
   for code, n in pairs(statuses) do
      table.insert(parts, string.format('"%s":%d', code, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
      '"statuses":{%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean,
      table.concat(parts, ",")))
end
