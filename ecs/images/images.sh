#!/usr/bin/env bash
# Container images of the three binaries, built and smoke-tested without a Docker engine.
#
#   ecs/images/images.sh build [--no-cargo]   cargo build --release (shared target/), then one
#                                             FROM scratch image per binary with
#                                             `buildah bud --isolation chroot`; prints sizes
#   ecs/images/images.sh smoke                task-svc + gateway in ONE podman pod (shared
#                                             localhost, like the awsvpc task), auth-svc beside
#                                             them, PostgreSQL on the host loopback; requests go
#                                             through the gateway
#   ecs/images/images.sh push REGISTRY        push the three images to REGISTRY (the ECR host,
#                                             ACCOUNT.dkr.ecr.REGION.amazonaws.com) after
#                                             `aws ecr get-login-password | buildah login ...`
#
# Env: TAG (default: git describe --always --dirty; ECR tags are immutable, so never reuse one),
# IMAGE_PREFIX (default task-mgmt: images <prefix>-auth-service, -task-service, -gateway),
# TARGET_DIR (default <repo>/target), BIN_DIR (default $TARGET_DIR/release), DATABASE_URL (smoke: use this server instead of a
# throwaway cluster; it must be reachable from the pod), KEEP=1 (smoke: leave pod and
# database running for inspection), VENV (default <repo>/.venv: with moto_server and boto3 in
# it, smoke gives the gateway its keyring from Secrets Manager on moto and rotates the secret).
#
# Needs (Debian): buildah podman runc slirp4netns catatonit, and for smoke curl and the
# PostgreSQL server binaries (initdb, pg_ctl).
#
# Binaries are dynamically linked against glibc (the only Rust target installed is
# x86_64-unknown-linux-gnu, and rustup cannot fetch musl); each image carries the few .so files
# `ldd` lists. This reuses the workspace's one `cargo build --release` instead of a second,
# differently-flagged build, and keeps glibc's getaddrinfo working (Cloud Map and RDS names),
# which a static glibc binary cannot fully promise.
set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$IMAGES_DIR/../.." && pwd)
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
RELEASE=${BIN_DIR:-$TARGET_DIR/release}
TAG=${TAG:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo dev)}
# binary -> image (= ECR repository name, <stack>-<suffix>; ecs/deploy.sh sets IMAGE_PREFIX)
IMAGE_PREFIX=${IMAGE_PREFIX:-task-mgmt}
declare -A IMAGE=([auth-svc]=$IMAGE_PREFIX-auth-service [task-svc]=$IMAGE_PREFIX-task-service [gateway]=$IMAGE_PREFIX-gateway)
BINARIES=(auth-svc task-svc gateway)
UID_GID=65532:65532
VENV=${VENV:-$ROOT/.venv}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

# Podman settings for this machine kind: crun refuses the hybrid cgroup layout and the sandbox
# refuses raising RLIMIT_NPROC/NOFILE, so use runc and limits at or below the current ones.
podman_conf() {
    local conf=$STATE/containers.conf nofile nproc runtime=""
    nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=65536; [ "$nofile" -gt 65536 ] && nofile=65536
    nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] && nproc=4096; [ "$nproc" -gt 4096 ] && nproc=4096
    command -v runc >/dev/null && runtime='runtime = "runc"'
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\n%s\n' \
        "$nofile" "$nofile" "$nproc" "$nproc" "$runtime" >"$conf"
    export CONTAINERS_CONF=$conf
}

# Copies the binary's shared libraries (and the loader) into rootfs/, at the paths ldd reports.
stage_libs() {
    local bin=$1 rootfs=$2 lib
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}

stage() {
    local bin=$1 ctx=$2 rootfs=$2/rootfs
    mkdir -p "$rootfs/etc/ssl/certs"
    # The gateway's /tmp is a volume owned by its user (Dockerfile.gateway: COPY --chown tmp/);
    # the others get an ordinary sticky /tmp.
    if [ "$bin" = gateway ]; then mkdir -p "$ctx/tmp"; else install -d -m 1777 "$rootfs/tmp"; fi
    stage_libs "$RELEASE/$bin" "$rootfs"
    # CA roots: the gateway's AWS SDK client verifies Secrets Manager's TLS with them.
    cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
    printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'nonroot:x:65532:\n' >"$rootfs/etc/group"
    cp "$RELEASE/$bin" "$ctx/$bin"
    if [ "$bin" = gateway ]; then cp "$ROOT/sidecar.toml" "$ctx/sidecar.toml"; fi
}

cmd_build() {
    if [ "${1:-}" != "--no-cargo" ]; then
        # --workspace: the same feature resolution as scripts/run.sh and the bench, so the
        # release build is shared with them (docs/local-run.md, "One build").
        log "cargo build --release --workspace --bin auth-svc --bin task-svc --bin gateway (shares $TARGET_DIR)"
        (cd "$ROOT" && cargo build --release --workspace --bin auth-svc --bin task-svc --bin gateway)
    fi
    local built=() missing=() bin
    for bin in "${BINARIES[@]}"; do
        [ -x "$RELEASE/$bin" ] && built+=("$bin") || missing+=("$bin")
    done
    [ ${#built[@]} -gt 0 ] || die "no binaries in $RELEASE"
    for bin in "${built[@]}"; do
        local ctx=$STATE/ctx-$bin
        rm -rf "$ctx"; mkdir -p "$ctx"
        stage "$bin" "$ctx"
        log "buildah bud --isolation chroot ${IMAGE[$bin]}:$TAG"
        buildah bud --isolation chroot --format docker --layers=false --quiet \
            -f "$IMAGES_DIR/Dockerfile.$bin" -t "${IMAGE[$bin]}:$TAG" -t "${IMAGE[$bin]}:latest" "$ctx" >/dev/null
        rm -rf "$ctx"
    done
    echo
    printf '%-28s %-16s %10s  %s\n' IMAGE TAG SIZE LINKED
    for bin in "${built[@]}"; do
        local size libs
        size=$(podman image inspect --format '{{.Size}}' "${IMAGE[$bin]}:$TAG")
        libs=$(ldd "$RELEASE/$bin" | awk '$1 ~ /^\// || $2 == "=>" {print $1}' | xargs -n1 basename | paste -sd, -)
        printf '%-28s %-16s %7.1f MB  %s\n' "${IMAGE[$bin]}" "$TAG" "$(awk -v s="$size" 'BEGIN {print s / 1000000}')" "$libs"
    done
    [ ${#missing[@]} -eq 0 ] || die "not built (binary missing in $RELEASE): ${missing[*]}"
}

wait_for() { # what, timeout seconds, command...
    local what=$1 timeout=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $((SECONDS - start)) -lt "$timeout" ] || { log "timed out waiting for $what"; return 1; }
        sleep 0.5
    done
    log "$what after $((SECONDS - start)) s"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pg_bin() {
    local d
    for d in "${PG_BIN:-}" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) "$(dirname "$(command -v initdb 2>/dev/null || echo /x/x)")"; do
        [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
    done
    die "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN or DATABASE_URL)"
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

SMOKE_POD=""
PG_DATA=""
MOTO_PID=""
smoke_cleanup() {
    local rc=$?
    if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: pod $SMOKE_POD and database left running"; return $rc; fi
    [ -n "$SMOKE_POD" ] && podman pod rm -f -t 0 "$SMOKE_POD" >/dev/null 2>&1 || true
    [ -n "$SMOKE_POD" ] && podman rm -f -t 0 "$SMOKE_POD-untrusting" >/dev/null 2>&1 || true
    [ -n "$SMOKE_POD" ] && podman volume rm -f "$SMOKE_POD-tmp" >/dev/null 2>&1 || true
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
    if [ -n "$PG_DATA" ]; then as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$STATE"
    return $rc
}

# HTTP helper: method url [bearer] [body] -> prints "STATUS BODY"
http() {
    local args=(-s -o "$STATE/body" -w '%{http_code}' -X "$1" "$2" --max-time 10)
    [ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
    [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data "$4")
    local code
    code=$(curl "${args[@]}")
    echo "$code $(cat "$STATE/body")"
}

expect() { # description expected-status "STATUS BODY"
    local got=${3%% *}
    if [ "$got" = "$2" ]; then
        printf '  ok    %-52s %s\n' "$1" "$(echo "${3#* }" | cut -c1-100)"
    else
        printf '  FAIL  %-52s expected %s, got: %s\n' "$1" "$2" "$3"
        FAILED=$((FAILED + 1))
    fi
}

cmd_smoke() {
    local bin
    for bin in auth-svc task-svc gateway; do
        podman image exists "${IMAGE[$bin]}:$TAG" || die "image ${IMAGE[$bin]}:$TAG missing: run images.sh build first (same TAG)"
    done
    trap smoke_cleanup EXIT
    local db_url
    if [ -n "${DATABASE_URL:-}" ]; then
        db_url=$DATABASE_URL
    else
        local pg port
        pg=$(pg_bin); port=$(free_port)
        PG_DATA=$STATE/pg/data
        mkdir -p "$STATE/pg/socket"
        [ "$(id -u)" = 0 ] && chown -R postgres: "$STATE/pg" && chmod 755 "$STATE"
        log "throwaway PostgreSQL on 127.0.0.1:$port ($pg)"
        as_pg "$pg/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync --no-instructions >/dev/null
        as_pg "$pg/pg_ctl" -D "$PG_DATA" -l "$STATE/pg/postgres.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $STATE/pg/socket -c fsync=off" start >/dev/null
        as_pg "$pg/createdb" -h 127.0.0.1 -p "$port" -U postgres taskmanagement
        # The pod reaches the host's loopback as 10.0.2.2 (slirp4netns allow_host_loopback).
        db_url="postgres://postgres@10.0.2.2:$port/taskmanagement"
    fi

    local gw_port auth_port metrics_port secret
    gw_port=$(free_port); auth_port=$(free_port); metrics_port=$(free_port)
    secret=$(new_secret)
    # The keyring of auth-svc and the gateway: from Secrets Manager (JWT_SECRET_ARN, as in ECS)
    # when moto_server is in the venv, else from JWT_SECRET.
    local gw_keyring=(-e JWT_SECRET="$secret") moto_port="" arn=""
    if [ -x "$VENV/bin/moto_server" ]; then
        # Secrets Manager over TLS, as on AWS: moto serves HTTPS with a certificate from a test
        # CA, and the containers get a CA bundle that includes it, mounted where the images
        # keep theirs (the AWS SDK's rustls reads the system roots: SSL_CERT_FILE, else
        # /etc/ssl/certs/ca-certificates.crt, found by openssl-probe).
        test_ca
        moto_port=$(free_port)
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" -c "$STATE/tls/server.pem" -k "$STATE/tls/server.key" \
            >"$STATE/moto.log" 2>&1 &
        MOTO_PID=$!
        wait_for "moto_server (Secrets Manager, TLS) on 127.0.0.1:$moto_port" 30 \
            curl -s --cacert "$STATE/tls/ca.pem" "https://127.0.0.1:$moto_port/" || return 1
        arn=$(sm "$moto_port" create "$secret")
        gw_keyring=(-e JWT_SECRET_ARN="$arn" -e AWS_ENDPOINT_URL_SECRETS_MANAGER="https://10.0.2.2:$moto_port"
            -v "$STATE/tls/bundle.pem:/etc/ssl/certs/ca-certificates.crt:ro"
            -e AWS_REGION=us-east-1 -e AWS_ACCESS_KEY_ID=smoke -e AWS_SECRET_ACCESS_KEY=smoke)
    else
        log "no $VENV/bin/moto_server: keyrings from JWT_SECRET, rotation not exercised"
    fi
    # auth-svc re-reads every 5 s here (60 s by default) so the rotation below is quick.
    local auth_keyring=("${gw_keyring[@]}")
    [ -n "$arn" ] && auth_keyring+=(-e JWT_KEYRING_REFRESH_SECS=5)
    SMOKE_POD=tm-smoke-$$
    # One pod = one network namespace: like the awsvpc task, its containers share localhost.
    # Only the gateway (3000), its metrics (9100) and auth-svc (3100, its own ECS service in AWS)
    # are published, on the host loopback. task-svc's 3001 is not published and binds loopback.
    podman pod create --name "$SMOKE_POD" --network slirp4netns:allow_host_loopback=true \
        -p "127.0.0.1:$gw_port:3000" -p "127.0.0.1:$metrics_port:9100" -p "127.0.0.1:$auth_port:3100" >/dev/null
    # The task definitions' hardening: non-root, read-only root, no capabilities, init process.
    local hard=(--pod "$SMOKE_POD" --user "$UID_GID" --read-only --cap-drop ALL
        --security-opt no-new-privileges --init --log-driver k8s-file
        # The image HEALTHCHECK needs systemd timers in podman; the same probe is run by hand below.
        --no-healthcheck)
    log "auth-svc (port 3100 in the pod)"
    podman run -d --name "$SMOKE_POD-auth" "${hard[@]}" "${auth_keyring[@]}" \
        -e DATABASE_URL="$db_url" -e PORT=3100 -e METRICS_ADDR=127.0.0.1:9101 \
        -e SHUTDOWN_GRACE_SECS=5 "${IMAGE[auth-svc]}:$TAG" >/dev/null
    log "task-svc (127.0.0.1:3001 in the pod)"
    podman run -d --name "$SMOKE_POD-task" "${hard[@]}" \
        -e DATABASE_URL="$db_url" -e PORT=3001 -e BIND_ADDR=127.0.0.1 -e METRICS_ADDR=127.0.0.1:9102 \
        -e SHUTDOWN_GRACE_SECS=20 "${IMAGE[task-svc]}:$TAG" >/dev/null
    # dependsOn task-svc HEALTHY: the gateway starts only once task-svc's own probe passes.
    wait_for "task-svc healthy (task-svc healthcheck)" 60 podman exec "$SMOKE_POD-task" /usr/local/bin/task-svc healthcheck \
        || { podman logs "$SMOKE_POD-task" | tail -20; return 1; }
    log "gateway (0.0.0.0:3000 and :9100 in the pod)"
    # /tmp: a named volume, which podman fills from the image's VOLUME directory (owner
    # included) the way Fargate fills the task's bind volume.
    podman run -d --name "$SMOKE_POD-gateway" "${hard[@]}" -v "$SMOKE_POD-tmp:/tmp" \
        "${gw_keyring[@]}" -e AUTH_SERVICE_URL=http://127.0.0.1:3100 "${IMAGE[gateway]}:$TAG" >/dev/null
    wait_for "gateway healthy (gateway healthcheck)" 60 podman exec "$SMOKE_POD-gateway" /usr/local/bin/gateway healthcheck \
        || { podman logs "$SMOKE_POD-gateway" | tail -20; return 1; }
    wait_for "auth-svc healthy (auth-svc healthcheck)" 60 podman exec "$SMOKE_POD-auth" /usr/local/bin/auth-svc healthcheck \
        || { podman logs "$SMOKE_POD-auth" | tail -20; return 1; }

    FAILED=0
    local gw=http://127.0.0.1:$gw_port auth=http://127.0.0.1:$auth_port user token resp task_id
    user=smoke$RANDOM
    echo
    echo "smoke test through the gateway ($gw):"
    expect "GET /tasks/health (public route)" 200 "$(http GET "$gw/tasks/health")"
    expect "GET /tasks without a token" 401 "$(http GET "$gw/tasks")"
    expect "GET /tasks with a forged token" 401 "$(http GET "$gw/tasks" "eyJhbGciOiJIUzI1NiJ9.e30.AAAA")"
    expect "POST /auth/register (auth-svc)" 201 "$(http POST "$auth/auth/register" "" \
        "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"smoke-Passw0rd-123\"}")"
    resp=$(http POST "$auth/auth/login" "" "{\"username\":\"$user\",\"password\":\"smoke-Passw0rd-123\"}")
    expect "POST /auth/login (auth-svc)" 200 "$resp"
    token=$(echo "${resp#* }" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    resp=$(http POST "$gw/tasks" "$token" '{"title":"smoke test","priority":"high"}')
    expect "POST /tasks with the token" 201 "$resp"
    task_id=$(echo "${resp#* }" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task"]["id"])')
    expect "GET /tasks (list)" 200 "$(http GET "$gw/tasks" "$token")"
    expect "GET /tasks/$task_id" 200 "$(http GET "$gw/tasks/$task_id" "$token")"
    expect "PUT /tasks/$task_id" 200 "$(http PUT "$gw/tasks/$task_id" "$token" '{"status":"completed"}')"
    expect "DELETE /tasks/$task_id" 204 "$(http DELETE "$gw/tasks/$task_id" "$token")"
    expect "GET /ready (gateway metrics port)" 200 "$(http GET "http://127.0.0.1:$metrics_port/ready")"
    local owner
    owner=$(stat -c %u:%g "$(podman volume inspect --format '{{.Mountpoint}}' "$SMOKE_POD-tmp")")
    expect "gateway /tmp volume owned by its user (65532:65532)" "$UID_GID" "$owner"
    resp=$(http GET "http://127.0.0.1:$metrics_port/metrics")
    expect "GET /metrics (gateway metrics port)" 200 "${resp%%$'\n'*}"

    if [ -n "$arn" ]; then
        # The README's rotation: put a new value (the old one becomes AWSPREVIOUS), nothing
        # else; auth-svc re-reads it, gateways learn the new key id and keep accepting old tokens.
        echo
        echo "JWT secret rotation (gateway keyring from Secrets Manager, moto):"
        # A token signed with the old key that the gateway has never seen (so not in its cache).
        local old_token new
        resp=$(http POST "$auth/auth/login" "" "{\"username\":\"$user\",\"password\":\"smoke-Passw0rd-123\"}")
        old_token=$(echo "${resp#* }" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
        new=$(new_secret)
        sm "$moto_port" put "$new" "$arn" >/dev/null
        sleep 7   # one auth-svc re-read (JWT_KEYRING_REFRESH_SECS=5) and then some; no restart
        resp=$(http POST "$auth/auth/login" "" "{\"username\":\"$user\",\"password\":\"smoke-Passw0rd-123\"}")
        expect "POST /auth/login after rotation" 200 "$resp"
        token=$(echo "${resp#* }" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
        expect "GET /tasks with a new-key token" 200 "$(http GET "$gw/tasks" "$token")"
        expect "GET /tasks with an unseen old-key token (AWSPREVIOUS)" 200 "$(http GET "$gw/tasks" "$old_token")"
    fi

    if [ -n "$arn" ]; then
        untrusting_gateway "$moto_port" "$arn"
    fi

    echo
    log "stopping like ECS: gateway first (dependsOn reversed), then task-svc"
    # stopTimeout in the task definition: gateway 35 s, task-svc 30 s (SIGKILL after that).
    local name timeout t0 code
    local label
    for spec in gateway:35 task:30; do
        name=${spec%%:*}; timeout=${spec#*:}; t0=$SECONDS
        label=$([ "$name" = task ] && echo task-svc || echo gateway)
        podman stop -t "$timeout" "$SMOKE_POD-$name" >/dev/null
        code=$(podman inspect --format '{{.State.ExitCode}}' "$SMOKE_POD-$name")
        if [ "$code" = 0 ]; then
            printf '  ok    %-52s exit 0 after %s s (stopTimeout %s s)\n' "$label stops cleanly on SIGTERM" "$((SECONDS - t0))" "$timeout"
        else
            printf '  FAIL  %-52s exit %s after %s s\n' "$label stops cleanly on SIGTERM" "$code" "$((SECONDS - t0))"
            FAILED=$((FAILED + 1))
        fi
    done
    if [ "$FAILED" -gt 0 ]; then
        for c in auth task gateway; do echo "--- $c logs"; podman logs "$SMOKE_POD-$c" 2>&1 | tail -15; done
        die "smoke test: $FAILED check(s) failed"
    fi
    echo "smoke: all checks passed"
}

# A throwaway CA and a server certificate for moto (10.0.2.2 is the host as the pod sees it).
test_ca() {
    local d=$STATE/tls
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=task-mgmt smoke test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=moto" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:10.0.2.2,IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
        -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
    cat /etc/ssl/certs/ca-certificates.crt "$d/ca.pem" >"$d/bundle.pem"
    chmod 644 "$d"/*.pem
}

# The negative half of the TLS check: a gateway with the image's own CA bundle (which lacks the
# test CA) must not accept moto's certificate, so it never loads its keyring and stays not ready.
untrusting_gateway() {
    local moto_port=$1 arn=$2 port name=$SMOKE_POD-untrusting
    port=$(free_port)
    podman run -d --name "$name" --network slirp4netns:allow_host_loopback=true -p "127.0.0.1:$port:9100" \
        --user "$UID_GID" --read-only --cap-drop ALL --init --no-healthcheck --tmpfs /tmp \
        -e JWT_SECRET_ARN="$arn" -e AWS_ENDPOINT_URL_SECRETS_MANAGER="https://10.0.2.2:$moto_port" \
        -e AWS_REGION=us-east-1 -e AWS_ACCESS_KEY_ID=smoke -e AWS_SECRET_ACCESS_KEY=smoke \
        -e AUTH_SERVICE_URL=http://127.0.0.1:3100 "${IMAGE[gateway]}:$TAG" >/dev/null
    echo
    echo "TLS trust (a gateway with the image's own CA bundle, without the test CA):"
    if wait_for "its Secrets Manager read refused for the certificate" 60 \
        sh -c "podman logs $name 2>&1 | grep -q -i -E 'certificate|UnknownIssuer'"; then
        expect "keyring read fails on the unknown CA" 1 "1 $(podman logs "$name" 2>&1 | grep -i -m1 -o -E '.{0,40}UnknownIssuer.{0,20}' | head -1)"
    else
        expect "keyring read fails on the unknown CA" 1 "0 $(podman logs "$name" 2>&1 | tail -3)"
    fi
    expect "GET /ready while it has no keyring" 503 "$(http GET "http://127.0.0.1:$port/ready")"
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
}

new_secret() { head -c 96 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-64; }

# Secrets Manager on moto: sm PORT create SECRET -> ARN; sm PORT put SECRET ARN
sm() {
    SMOKE_CA=$STATE/tls/ca.pem "$VENV/bin/python" - "$@" <<'PY'
import json, os, sys
import boto3
port, op, secret = sys.argv[1:4]
ca = os.environ["SMOKE_CA"]
c = boto3.client("secretsmanager", endpoint_url=f"https://127.0.0.1:{port}", region_name="us-east-1", verify=ca,
                 aws_access_key_id="smoke", aws_secret_access_key="smoke")
value = json.dumps({"secret": secret, "expiration": "3600"})
if op == "create":
    print(c.create_secret(Name="task-mgmt-jwt-secret", SecretString=value)["ARN"])
else:
    print(c.put_secret_value(SecretId=sys.argv[4], SecretString=value)["VersionId"])
PY
}

cmd_push() {
    local registry=${1:?usage: images.sh push REGISTRY (ACCOUNT.dkr.ecr.REGION.amazonaws.com)} bin
    for bin in "${BINARIES[@]}"; do
        log "push ${IMAGE[$bin]}:$TAG -> $registry/${IMAGE[$bin]}:$TAG"
        buildah push "${IMAGE[$bin]}:$TAG" "docker://$registry/${IMAGE[$bin]}:$TAG"
    done
    echo "pushed tag $TAG; deploy with AuthImageTag=$TAG TaskImageTag=$TAG GatewayImageTag=$TAG"
}

STATE=$(mktemp -d /tmp/ecs-images.XXXXXX)
podman_conf
case "${1:-}" in
    build) shift; cmd_build "$@"; rm -rf "$STATE" ;;
    smoke) shift; cmd_smoke "$@" ;;
    push) shift; cmd_push "$@"; rm -rf "$STATE" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
