# Images for ecs/deploy.sh (sourced; uses its say/die/aws_cli and ROOT, ARCH, BUILDER, TAG,
# REGISTRY, NAME_PREFIX).
#
#   image_tag                       the git commit (12 hex digits); with uncommitted changes to
#                                   tracked files, plus -dirty-<hash of the diff>, so the same
#                                   tree gives the same tag and ECR's immutable tags never clash
#   registry_login                  aws ecr get-login-password | <tool> login REGISTRY
#   image_exists REPO               HEAD /v2/REPO/manifests/TAG on the registry (ECR's or REGISTRY)
#   build_and_push REPO BINARY      build one image for ARCH with BUILDER, push REGISTRY/REPO:TAG
#
# Builders: docker / podman build ecs/images/Dockerfile (multi-stage: Rust toolchain, then
# distroless) on any Linux or macOS; scratch runs ecs/images/images.sh (a host cargo release
# build, FROM scratch images with buildah; Linux, host architecture only) and pushes with skopeo.

# The three images: binary -> repository suffix (<NamePrefix>-<suffix>).
declare -A REPO_SUFFIX=([auth-svc]=auth-service [task-svc]=task-service [gateway]=gateway)
IMAGE_BINARIES=(auth-svc task-svc gateway)

image_tag() {
    local commit
    commit=$(git -C "$ROOT" rev-parse --short=12 HEAD) || die "not a git checkout: pass --tag"
    if git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
        echo "$commit"
    else
        echo "$commit-dirty-$(git -C "$ROOT" diff HEAD --binary | sha256sum | cut -c1-8)"
    fi
}

# TLS verification of the registry: on, except REGISTRY_TLS_VERIFY=false (a local test registry).
tls_flag() {
    [ "${REGISTRY_TLS_VERIFY:-true}" = false ] && echo "--tls-verify=false" || echo "--tls-verify=true"
}

registry_scheme() {
    [ "${REGISTRY_TLS_VERIFY:-true}" = false ] && echo http || echo https
}

registry_login() {
    local tool password
    password=$(aws_cli ecr get-login-password) || die "aws ecr get-login-password failed (ecr:GetAuthorizationToken)"
    REGISTRY_PASSWORD=$password
    case "$BUILDER" in
        docker) tool=(docker login) ;;
        podman) tool=(podman login "$(tls_flag)") ;;
        scratch) tool=(skopeo login "$(tls_flag)") ;;
    esac
    printf '%s' "$password" | "${tool[@]}" --username AWS --password-stdin "$REGISTRY" >/dev/null \
        || die "${tool[*]} $REGISTRY failed"
}

image_exists() {
    local repo=$1 code
    code=$(curl -s -o /dev/null -w '%{http_code}' -I -u "AWS:$REGISTRY_PASSWORD" \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
        "$(registry_scheme)://$REGISTRY/v2/$repo/manifests/$TAG")
    [ "$code" = 200 ]
}

build_and_push() {
    local repo=$1 bin=$2 ref="$REGISTRY/$1:$TAG"
    case "$BUILDER" in
        docker)
            docker buildx build --platform "linux/$ARCH" -f "$ROOT/ecs/images/Dockerfile" --target "$bin" \
                --provenance=false -t "$ref" --push "$ROOT" ;;
        podman)
            podman build --platform "linux/$ARCH" -f "$ROOT/ecs/images/Dockerfile" --target "$bin" -t "$ref" "$ROOT"
            podman push "$(tls_flag)" "$ref" ;;
        scratch)
            # One cargo build and three images the first time; images.sh builds all three.
            if [ -z "${SCRATCH_BUILT:-}" ]; then
                TAG=$TAG IMAGE_PREFIX=$NAME_PREFIX "$ROOT/ecs/images/images.sh" build ${SCRATCH_NO_CARGO:+--no-cargo}
                SCRATCH_BUILT=1
            fi
            # (containers-storage logs its storage driver choice at info level: not news.)
            skopeo copy -q "--dest-$(tls_flag | sed 's/^--//')" \
                "containers-storage:localhost/$NAME_PREFIX-${REPO_SUFFIX[$bin]}:$TAG" "docker://$ref" \
                2> >(grep -v 'graphdriver' >&2) ;;
    esac
}

# The architecture the scratch builder produces: the host's (it copies the host's binaries).
host_arch() {
    case "$(uname -m)" in
        x86_64 | amd64) echo amd64 ;;
        aarch64 | arm64) echo arm64 ;;
        *) uname -m ;;
    esac
}
