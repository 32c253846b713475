# The console guide's smoke flow against a deployed front door, for ecs/deploy.sh (sourced).
#
#   smoke URL     waits (SMOKE_WAIT_SECS, default 900) until /auth/health and /tasks/health
#                 answer 200 (new ECS tasks need minutes), then: register, login, create, list,
#                 update, delete a task, a forged token refused, an unknown route's JSON 404.
#                 Prints PASS/FAIL per step; returns non-zero when a step failed.

SMOKE_WAIT_SECS=${SMOKE_WAIT_SECS:-900}

# method url [bearer] [body] -> "STATUS BODY" (status 000 when nothing answered)
smoke_http() {
    local args=(-s -o "$SMOKE_BODY" -w '%{http_code}' -X "$1" "$2" --max-time 15)
    [ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
    [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data "$4")
    local code
    code=$(curl "${args[@]}") || true
    echo "${code:-000} $(cat "$SMOKE_BODY" 2>/dev/null)"
}

smoke_step() { # description expected-status "STATUS BODY"
    local got=${3%% *} body=${3#* }
    SMOKE_STEPS=$((SMOKE_STEPS + 1))
    if [ "$got" = "$2" ]; then
        printf '  PASS  %-46s %s %s\n' "$1" "$got" "$(printf '%s' "$body" | tr -d '\n' | cut -c1-70)"
    else
        printf '  FAIL  %-46s expected %s, got %s %s\n' "$1" "$2" "$got" "$(printf '%s' "$body" | tr -d '\n' | cut -c1-120)"
        SMOKE_FAILED=$((SMOKE_FAILED + 1))
    fi
}

json_field() { # "STATUS BODY" python-expression-on-d
    printf '%s' "${1#* }" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" 2>/dev/null
}

smoke() {
    local url=${1%/} start=$SECONDS user token resp id
    SMOKE_BODY=$(mktemp)
    SMOKE_STEPS=0
    SMOKE_FAILED=0
    say "smoke test against $url: waiting for both health checks (up to $SMOKE_WAIT_SECS s; new tasks take minutes)"
    until [ "$(smoke_http GET "$url/auth/health" | cut -c1-3)" = 200 ] && [ "$(smoke_http GET "$url/tasks/health" | cut -c1-3)" = 200 ]; do
        if [ $((SECONDS - start)) -ge "$SMOKE_WAIT_SECS" ]; then
            echo "  FAIL  health checks did not pass within $SMOKE_WAIT_SECS s: $(smoke_http GET "$url/auth/health" | cut -c1-80)"
            rm -f "$SMOKE_BODY"
            return 1
        fi
        sleep 5
    done
    user=smoke$(date +%s)$RANDOM
    smoke_step "GET /auth/health" 200 "$(smoke_http GET "$url/auth/health")"
    smoke_step "GET /tasks/health" 200 "$(smoke_http GET "$url/tasks/health")"
    local password="Smoke-Passw0rd-$RANDOM$RANDOM"
    smoke_step "POST /auth/register" 201 "$(smoke_http POST "$url/auth/register" "" \
        "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"$password\"}")"
    resp=$(smoke_http POST "$url/auth/login" "" "{\"username\":\"$user\",\"password\":\"$password\"}")
    smoke_step "POST /auth/login" 200 "$resp"
    token=$(json_field "$resp" 'd["token"]')
    resp=$(smoke_http POST "$url/tasks" "$token" '{"title":"deploy smoke test","priority":"high"}')
    smoke_step "POST /tasks (create)" 201 "$resp"
    id=$(json_field "$resp" 'd["task"]["id"]')
    smoke_step "GET /tasks (list)" 200 "$(smoke_http GET "$url/tasks" "$token")"
    smoke_step "PUT /tasks/$id (update)" 200 "$(smoke_http PUT "$url/tasks/$id" "$token" '{"status":"completed"}')"
    smoke_step "DELETE /tasks/$id" 204 "$(smoke_http DELETE "$url/tasks/$id" "$token")"
    smoke_step "GET /tasks/$id after delete" 404 "$(smoke_http GET "$url/tasks/$id" "$token")"
    # The real token's header and claims with a signature no key made (so it must fail the
    # signature check, not the parser).
    local forged
    forged="${token%.*}.$(printf 'a signature made by nobody at all' | base64 | tr '+/' '-_' | tr -d '=\n')"
    smoke_step "GET /tasks with a forged token refused" 401 "$(smoke_http GET "$url/tasks" "$forged")"
    smoke_step "GET /tasks without a token refused" 401 "$(smoke_http GET "$url/tasks")"
    smoke_step "GET /nope (unknown route, JSON 404)" 404 "$(smoke_http GET "$url/nope")"
    rm -f "$SMOKE_BODY"
    echo "smoke: $((SMOKE_STEPS - SMOKE_FAILED)) passed, $SMOKE_FAILED failed"
    [ "$SMOKE_FAILED" -eq 0 ]
}
