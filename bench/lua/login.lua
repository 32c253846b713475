-- POST /auth/login. Arguments (after `--`):
--   data         file of "username" lines (seeded users sharing one password)
--   password     their password
--   wrong_every  every Nth request uses a wrong password (expects 401); 0 = never
-- Counts every status (200, 401 and 503 are the expected ones) for the harness.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local rows, password, wrong_every
local sent = 0

function init(args)
   rows = read_rows(args[1])
   password = args[2]
   wrong_every = tonumber(args[3]) or 0
   seed_random()
   statuses = {}
end

function request()
   sent = sent + 1
   local row = rows[math.random(#rows)]
   local pw = password
   if wrong_every > 0 and sent % wrong_every == 0 then
      pw = password .. "-wrong"
   end
   local body = string.format('{"username":"%s","password":"%s"}', row[1], pw)
   return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end
