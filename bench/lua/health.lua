-- GET /tasks/health, the floor: a static request (no request() function, so wrk sends the
-- same pre-built request on every connection and spends no Lua per request).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = "GET"
wrk.path = "/tasks/health"
