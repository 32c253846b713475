#!/usr/bin/env bash
# Deploys the Task Management API to an AWS account, from nothing, with one command.
#
#   ecs/deploy.sh up [options]      create or update everything, then run the smoke flow
#   ecs/deploy.sh status [options]  the stacks, the URL, the images and the running tasks
#   ecs/deploy.sh down [options]    delete everything `up` created; says what it keeps and why
#
# `up`, in order (each step is skipped when there is nothing to do, so a second `up` with
# nothing changed changes nothing):
#   1. checks the tools and the AWS credentials, and says exactly what is missing;
#   2. stack <stack>-bootstrap (ecs/cloudformation/bootstrap.yaml): the three ECR repositories
#      and the bucket the main template is uploaded to;
#   3. images tagged with the git commit: built and pushed unless the registry has the tag;
#   4. stack <stack>-network (network.yaml): VPC, subnets, routes, endpoints or NAT
#      (not with --vpc-id);
#   5. with --jwt-alg RS256|EdDSA, the secret <stack>-jwt-signing-key when it does not exist yet
#      (a key generated here with openssl, never printed: ecs/deploy/signing_key.sh), then stack
#      <stack> (task-management.yaml, uploaded to S3: no 51,200-byte limit); after its first
#      create, RDS deletion protection is turned on (off while a failed create must roll back);
#   6. prints the URL and whether it is HTTPS, then the smoke flow with PASS/FAIL per step.
# Every stack changes through a change set: the changes are printed, then the events as they happen.
#
# Options:
#   --stack NAME          stack name and prefix of every physical name (default task-mgmt; 2-20
#                         of a-z 0-9 -, starting with a letter)
#   --region REGION       default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region
#   --arch amd64|arm64    CPU architecture of the images and the Fargate tasks (default: this
#                         machine's; arm64 = Graviton, ~20 % cheaper; building the other one
#                         runs under emulation and takes far longer)
#   --egress endpoints|nat|single-nat
#                         the network stack's way out for the tasks (default endpoints; see
#                         ecs/README.md "Network")
#   --vpc-id ID --public-subnets A,B --private-subnets C,D [--endpoint-sg SG]
#                         use an existing VPC instead of creating one
#   --domain NAME --hosted-zone-id ZONE
#                         HTTPS: ACM certificate for NAME validated in the Route 53 zone, HTTP
#                         redirects, NAME points at the ALB. Without: HTTP only (said plainly)
#   --builder docker|podman|scratch
#                         docker/podman: ecs/images/Dockerfile (multi-stage); scratch: host
#                         release build + FROM scratch images (Linux, host arch; needs buildah
#                         and skopeo). Default: docker if its daemon answers, else podman, else scratch
#   --tag TAG             image tag (default: the git commit, see image_tag in ecs/deploy/images.sh)
#   --jwt-alg HS256|RS256|EdDSA
#                         token signing (ecs/README.md "Signing modes"): HS256 a shared secret
#                         that auth-svc and the gateways hold; RS256/EdDSA a private key only
#                         auth-svc holds (created on the first up), gateways verify its public
#                         JWKS. Default: the stack's current choice, HS256 for a new stack
#   --tracing on|off      the ADOT collector sidecars and X-Ray export (and the xray VPC endpoint).
#                         Default: the stack's current choice, on for a new stack
#   --param KEY=VALUE     another main-stack parameter, repeatable (DbInstanceClass=db.t4g.micro,
#                         MinTasksPerService=1, DbMultiAz=true, AlarmTopicArn=..., ...)
#   --cfn-role-arn ARN    CloudFormation service role for the stacks (the deploy role template's
#                         CloudFormationRoleArn output; also env CFN_ROLE_ARN)
#   --no-smoke            skip the smoke flow          --smoke-url URL   smoke another front door
#   --keep-images         down: keep <stack>-bootstrap (repositories with their images, bucket)
#   --yes                 down: do not ask
#   -h, --help            this text
#
# Environment for tests against local stand-ins (ecs/deploy_test/): AWS_ENDPOINT_URL (moto),
# REGISTRY (push there instead of the ECR host), REGISTRY_TLS_VERIFY=false, TEMPLATE_DIR (read
# the templates from there), BIN_DIR and SCRATCH_NO_CARGO=1 (scratch builder: these binaries),
# POLL_SECS, SMOKE_WAIT_SECS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATE_DIR=${TEMPLATE_DIR:-$ROOT/ecs/cloudformation}
VENV=${VENV:-$ROOT/.venv}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# The AWS CLI: on PATH, else the project's .venv (scripts/setup.sh installs awscli there).
AWS_BIN=$(command -v aws || true)
[ -n "$AWS_BIN" ] || { [ -x "$VENV/bin/aws" ] && AWS_BIN=$VENV/bin/aws; }
# An explicit AWS_ENDPOINT_URL is passed on: AWS CLI v1 ignores it for a few services in
# us-east-1 (rds, among others, gets its legacy global endpoint).
aws_cli() { "$AWS_BIN" --region "$REGION" ${AWS_ENDPOINT_URL:+--endpoint-url "$AWS_ENDPOINT_URL"} "$@"; }

# shellcheck source=ecs/deploy/stacks.sh
. "$ROOT/ecs/deploy/stacks.sh"
# shellcheck source=ecs/deploy/images.sh
. "$ROOT/ecs/deploy/images.sh"
# shellcheck source=ecs/deploy/smoke.sh
. "$ROOT/ecs/deploy/smoke.sh"
# shellcheck source=ecs/deploy/signing_key.sh
. "$ROOT/ecs/deploy/signing_key.sh"

COMMAND=${1:-}
case "$COMMAND" in
    up | status | down) shift ;;
    -h | --help | help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

STACK=${STACK:-task-mgmt}
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
ARCH=""
EGRESS=endpoints
VPC_ID="" PUBLIC_SUBNETS="" PRIVATE_SUBNETS="" ENDPOINT_SG=""
DOMAIN="" HOSTED_ZONE=""
BUILDER=""
TAG=""
JWT_ALG="" TRACING=""
EXTRA_PARAMS=()
CFN_ROLE_ARN=${CFN_ROLE_ARN:-}
SMOKE=1 SMOKE_URL=""
KEEP_IMAGES=0 YES=0
while [ $# -gt 0 ]; do
    case "$1" in
        --stack) STACK=$2; shift ;;
        --region) REGION=$2; shift ;;
        --arch) ARCH=$2; shift ;;
        --egress) EGRESS=$2; shift ;;
        --vpc-id) VPC_ID=$2; shift ;;
        --public-subnets) PUBLIC_SUBNETS=$2; shift ;;
        --private-subnets) PRIVATE_SUBNETS=$2; shift ;;
        --endpoint-sg) ENDPOINT_SG=$2; shift ;;
        --domain) DOMAIN=$2; shift ;;
        --hosted-zone-id) HOSTED_ZONE=$2; shift ;;
        --builder) BUILDER=$2; shift ;;
        --tag) TAG=$2; shift ;;
        --jwt-alg) JWT_ALG=$2; shift ;;
        --tracing) TRACING=$2; shift ;;
        --param) EXTRA_PARAMS+=("$2"); shift ;;
        --cfn-role-arn) CFN_ROLE_ARN=$2; shift ;;
        --no-smoke) SMOKE=0 ;;
        --smoke-url) SMOKE_URL=$2; shift ;;
        --keep-images) KEEP_IMAGES=1 ;;
        --yes) YES=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

[[ "$STACK" =~ ^[a-z][a-z0-9-]{1,19}$ ]] || die "--stack $STACK: 2-20 characters of a-z, 0-9 and -, starting with a letter (it prefixes ECR, RDS and S3 names)"
NAME_PREFIX=$STACK
BOOTSTRAP_STACK=$STACK-bootstrap
NETWORK_STACK=$STACK-network
case "$EGRESS" in endpoints | nat | single-nat) ;; *) die "--egress $EGRESS: endpoints, nat or single-nat" ;; esac
[ -z "$VPC_ID" ] || { [ -n "$PUBLIC_SUBNETS" ] && [ -n "$PRIVATE_SUBNETS" ]; } \
    || die "--vpc-id needs --public-subnets A,B and --private-subnets C,D (two each, in two AZs)"
[ -z "$DOMAIN" ] || [ -n "$HOSTED_ZONE" ] || die "--domain needs --hosted-zone-id (the Route 53 zone the name is in)"
case "$JWT_ALG" in "" | HS256 | RS256 | EdDSA) ;; *) die "--jwt-alg $JWT_ALG: HS256, RS256 or EdDSA" ;; esac
case "$TRACING" in "" | on | off) ;; *) die "--tracing $TRACING: on or off" ;; esac

# ----------------------------------------------------------------------------- pre-flight

# Collects everything missing, then reports it all at once with how to get it.
preflight() {
    local missing=() tool
    [ -n "$AWS_BIN" ] || missing+=("the AWS CLI: install AWS CLI v2 (https://aws.amazon.com/cli/), or scripts/setup.sh test (awscli in .venv)")
    for tool in git curl python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [ "$COMMAND" = up ]; then
        if [ -z "$BUILDER" ]; then
            if docker info >/dev/null 2>&1; then BUILDER=docker
            elif command -v podman >/dev/null; then BUILDER=podman
            else BUILDER=scratch; fi
        fi
        [ -n "$ARCH" ] || ARCH=$(host_arch)
        case "$ARCH" in amd64 | x86_64) ARCH=amd64 ;; arm64 | aarch64) ARCH=arm64 ;; *) die "--arch $ARCH: amd64 or arm64" ;; esac
        case "$BUILDER" in
            docker)
                docker info >/dev/null 2>&1 || missing+=("a running Docker daemon (docker info failed)")
                docker buildx version >/dev/null 2>&1 || missing+=("docker buildx (Docker Desktop has it; on Linux the docker-buildx plugin)") ;;
            podman) command -v podman >/dev/null || missing+=("podman") ;;
            scratch)
                for tool in buildah skopeo cargo; do command -v "$tool" >/dev/null || missing+=("$tool (scratch builder)"); done
                [ "$ARCH" = "$(host_arch)" ] || die "--builder scratch builds for this machine ($(host_arch)) only; use --arch $(host_arch) or --builder docker|podman" ;;
            *) die "--builder $BUILDER: docker, podman or scratch" ;;
        esac
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'deploy.sh: missing:\n' >&2
        printf '  - %s\n' "${missing[@]}" >&2
        exit 1
    fi
    if [ -z "$REGION" ]; then
        REGION=$("$AWS_BIN" configure get region 2>/dev/null || true)
        [ -n "$REGION" ] || die "no AWS region: pass --region, or set AWS_REGION, or 'aws configure set region us-east-1'"
    fi
    local identity err
    if ! identity=$(aws_cli sts get-caller-identity --query '[Account,Arn]' --output text 2>&1); then
        err=$identity
        die "no usable AWS credentials ($(echo "$err" | tail -1)). Set AWS_PROFILE (aws configure / aws sso login),
  or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is assumed (GitHub OIDC: .github/workflows/deploy.yml)"
    fi
    ACCOUNT=${identity%%$'\t'*}
    say "AWS account $ACCOUNT, region $REGION, as ${identity#*$'\t'}; stack $STACK"
}

# ----------------------------------------------------------------------------- up

# --jwt-alg and --tracing not given: what the stack has now (a later up must not switch a
# stack's signing or tracing back to the defaults), else the defaults.
resolve_modes() {
    [ -n "$JWT_ALG" ] || JWT_ALG=$(stack_parameter "$STACK" JwtAlgorithm)
    [ -n "$JWT_ALG" ] || JWT_ALG=HS256
    if [ -z "$TRACING" ]; then
        case "$(stack_parameter "$STACK" Tracing)" in false) TRACING=off ;; *) TRACING=on ;; esac
    fi
    TRACING_PARAM=$([ "$TRACING" = on ] && echo true || echo false)
    if [ "$JWT_ALG" != HS256 ]; then
        signing_key_check "$JWT_ALG"
        command -v openssl >/dev/null || [ "$(signing_key_state)" != absent ] \
            || die "--jwt-alg $JWT_ALG: openssl is needed once, to generate the signing key (Debian: apt-get install openssl)"
    fi
    say "token signing $JWT_ALG, tracing $TRACING"
}

cmd_up() {
    preflight
    resolve_modes
    say "1/5 bootstrap: ECR repositories and the template bucket ($BOOTSTRAP_STACK)"
    deploy_stack "$BOOTSTRAP_STACK" --template-body "file://$TEMPLATE_DIR/bootstrap.yaml" "NamePrefix=$NAME_PREFIX"
    local bucket repo_uri
    bucket=$(stack_output "$BOOTSTRAP_STACK" ArtifactsBucketName)
    repo_uri=$(stack_output "$BOOTSTRAP_STACK" AuthRepositoryUri)
    [ -n "$bucket" ] && [ -n "$repo_uri" ] || die "$BOOTSTRAP_STACK has no ArtifactsBucketName/AuthRepositoryUri output"
    REGISTRY=${REGISTRY:-${repo_uri%%/*}}

    [ -n "$TAG" ] || TAG=$(image_tag)
    say "2/5 images $NAME_PREFIX-{auth-service,task-service,gateway}:$TAG for linux/$ARCH on $REGISTRY ($BUILDER)"
    [[ "$TAG" != *-dirty-* ]] || say "uncommitted changes: tag $TAG names this exact diff"
    registry_login
    local bin repo
    for bin in "${IMAGE_BINARIES[@]}"; do
        repo=$NAME_PREFIX-${REPO_SUFFIX[$bin]}
        if image_exists "$repo"; then
            say "$repo:$TAG is in the registry: not rebuilt"
        else
            say "building and pushing $repo:$TAG"
            build_and_push "$repo" "$bin"
            image_exists "$repo" || die "$REGISTRY/$repo:$TAG not found after the push"
        fi
    done

    local vpc=$VPC_ID public=$PUBLIC_SUBNETS private=$PRIVATE_SUBNETS endpoint_sg=$ENDPOINT_SG
    if [ -z "$VPC_ID" ]; then
        say "3/5 network: VPC over two AZs, egress $EGRESS ($NETWORK_STACK)"
        deploy_stack "$NETWORK_STACK" --template-body "file://$TEMPLATE_DIR/network.yaml" \
            "NamePrefix=$NAME_PREFIX" "Egress=$EGRESS" "XRayEndpoint=$TRACING_PARAM"
        vpc=$(stack_output "$NETWORK_STACK" VpcId)
        public=$(stack_output "$NETWORK_STACK" PublicSubnetIds)
        private=$(stack_output "$NETWORK_STACK" PrivateSubnetIds)
        endpoint_sg=$(stack_output "$NETWORK_STACK" EndpointSecurityGroupId)
    else
        say "3/5 network: the existing VPC $VPC_ID"
    fi

    SIGNING_KEY_ARN=""
    if [ "$JWT_ALG" != HS256 ]; then
        say "4/5 the $JWT_ALG signing key, then the main stack $STACK (template through s3://$bucket)"
        signing_key_ensure "$JWT_ALG"
    else
        say "4/5 main stack $STACK (template through s3://$bucket)"
        [[ "$(signing_key_state)" != active\ * ]] || say "note: $(signing_key_name) exists but HS256 does not use it (nothing reads it; down schedules its deletion)"
    fi
    local template=$TEMPLATE_DIR/task-management.yaml key url existed protection
    key=templates/$(sha256sum "$template" | cut -c1-64).yaml
    aws_cli s3 cp --only-show-errors "$template" "s3://$bucket/$key"
    url="https://$bucket.s3.$REGION.amazonaws.com/$key"
    existed=$(stack_status "$STACK")
    case "$existed" in
        NONE | REVIEW_IN_PROGRESS | ROLLBACK_COMPLETE | ROLLBACK_FAILED) protection=false ;;
        *) protection=true ;;
    esac
    local params=("NamePrefix=$NAME_PREFIX" "VpcId=$vpc" "PublicSubnetIds=$public" "PrivateSubnetIds=$private"
        "EndpointSecurityGroupId=$endpoint_sg" "CpuArchitecture=$([ "$ARCH" = arm64 ] && echo ARM64 || echo X86_64)"
        "AuthImageTag=$TAG" "TaskImageTag=$TAG" "GatewayImageTag=$TAG" "DeployServices=true"
        "DomainName=$DOMAIN" "HostedZoneId=$HOSTED_ZONE" "JwtAlgorithm=$JWT_ALG"
        "JwtSigningKeySecretArn=$SIGNING_KEY_ARN" "Tracing=$TRACING_PARAM" ${EXTRA_PARAMS[@]+"${EXTRA_PARAMS[@]}"})
    deploy_stack "$STACK" --template-url "$url" "${params[@]}" "DbDeletionProtection=$protection"
    if [ "$protection" = false ]; then
        say "first create succeeded: turning on RDS deletion protection (a failed create could not have rolled back with it)"
        deploy_stack "$STACK" --template-url "$url" "${params[@]}" "DbDeletionProtection=true"
    fi

    local alb https
    alb=$(stack_output "$STACK" AlbUrl)
    https=$(stack_output "$STACK" Https)
    echo
    echo "URL:     $alb"
    echo "HTTPS:   $https"
    echo "Signing: $JWT_ALG$([ "$JWT_ALG" = HS256 ] || echo " (public keys: $(stack_output "$STACK" JwksUrl))")"
    echo "Tracing: $(stack_output "$STACK" Tracing)"
    echo
    if [ "$SMOKE" = 1 ]; then
        say "5/5 smoke flow"
        smoke "${SMOKE_URL:-$alb}" || die "smoke test failed against ${SMOKE_URL:-$alb} (logs: aws logs tail /ecs/$NAME_PREFIX-auth-service /ecs/$NAME_PREFIX-task-service --since 15m)"
    else
        say "5/5 smoke flow skipped (--no-smoke)"
    fi
    say "up: done"
}

# ----------------------------------------------------------------------------- status

cmd_status() {
    preflight
    local s
    for s in "$BOOTSTRAP_STACK" "$NETWORK_STACK" "$STACK"; do
        printf '%-28s %s\n' "$s" "$(stack_status "$s")"
    done
    [ "$(stack_status "$STACK")" != NONE ] || return 0
    echo
    printf '%-28s %s\n' URL "$(stack_output "$STACK" AlbUrl)" HTTPS "$(stack_output "$STACK" Https)"
    printf '%-28s %s\n' "images" "auth $(stack_parameter "$STACK" AuthImageTag), task $(stack_parameter "$STACK" TaskImageTag), gateway $(stack_parameter "$STACK" GatewayImageTag)"
    printf '%-28s %s\n' "this checkout" "$(image_tag 2>/dev/null || echo '?')"
    printf '%-28s %s\n' "RDS deletion protection" "$(stack_parameter "$STACK" DbDeletionProtection)"
    printf '%-28s %s\n' "token signing" "$(stack_parameter "$STACK" JwtAlgorithm)" "signing key secret" "$(signing_key_state)"
    printf '%-28s %s\n' "tracing" "$(stack_output "$STACK" Tracing)"
    echo
    aws_cli ecs describe-services --cluster "$NAME_PREFIX-cluster" --services auth-service task-service --output text \
        --query 'services[].[serviceName,status,runningCount,desiredCount,deployments[0].rolloutState]' 2>/dev/null \
        | awk -F'\t' 'BEGIN {printf "%-16s %-8s %s\n", "service", "status", "running/desired (rollout)"} {printf "%-16s %-8s %s/%s (%s)\n", $1, $2, $3, $4, $5}' \
        || echo "(no ECS services yet)"
}

# ----------------------------------------------------------------------------- down

cmd_down() {
    preflight
    if [ "$YES" != 1 ]; then
        [ -t 0 ] || die "down deletes $STACK, $NETWORK_STACK$([ "$KEEP_IMAGES" = 1 ] || echo " and $BOOTSTRAP_STACK"): pass --yes"
        read -r -p "Delete stack $STACK and what up created in $REGION? Type the stack name: " answer
        [ "$answer" = "$STACK" ] || die "not confirmed"
    fi
    local kept=() deleted=() failed=()
    # Main stack first (it uses the network and the images), then the repositories and bucket,
    # then the network. A stack that cannot be deleted is reported and the rest still goes.
    if [ "$(stack_status "$STACK")" != NONE ]; then
        local db=$NAME_PREFIX-db
        if [ "$(aws_cli rds describe-db-instances --db-instance-identifier "$db" \
            --query 'DBInstances[0].DeletionProtection' --output text 2>/dev/null)" = True ]; then
            # Directly, not through a stack update: the stack is deleted next, so its
            # DbDeletionProtection parameter no longer matters, and an update could change more.
            say "turning off RDS deletion protection of $db so the stack can delete it (it takes a final snapshot first)"
            aws_cli rds modify-db-instance --db-instance-identifier "$db" --no-deletion-protection --apply-immediately >/dev/null
        fi
        if delete_stack "$STACK"; then
            deleted+=("$STACK: services, tasks, ALB, RDS instance, secrets, log groups (RDS's included), Cloud Map, alarms, dashboard, IAM roles")
        else
            failed+=("$STACK")
        fi
        local snapshots
        snapshots=$(aws_cli rds describe-db-snapshots --db-instance-identifier "$db" --snapshot-type manual \
            --query 'DBSnapshots[].[DBSnapshotIdentifier,SnapshotCreateTime]' --output text 2>/dev/null || true)
        if [ -n "$snapshots" ]; then
            while IFS=$'\t' read -r id when; do
                kept+=("RDS snapshot $id ($when): the database's final snapshot (DeletionPolicy: Snapshot), so deleting the stack never loses data. It costs storage; remove it with: aws rds delete-db-snapshot --db-snapshot-identifier $id")
            done <<<"$snapshots"
        else
            kept+=("no RDS snapshot of $db was found: CloudFormation takes one when it deletes the instance (DeletionPolicy: Snapshot); check aws rds describe-db-snapshots if you expected data")
        fi
    fi
    # The signing key outlives the stack only while a task could still read it.
    if [ "$(stack_status "$STACK")" = NONE ]; then
        local scheduled
        scheduled=$(signing_key_schedule_deletion)
        [ -z "$scheduled" ] || deleted+=("$scheduled")
    fi
    if [ "$(stack_status "$BOOTSTRAP_STACK")" != NONE ]; then
        if [ "$KEEP_IMAGES" = 1 ]; then
            kept+=("$BOOTSTRAP_STACK (--keep-images): the ECR repositories with their images and the template bucket; ecs/deploy.sh down without --keep-images removes them")
        else
            local bucket
            bucket=$(stack_output "$BOOTSTRAP_STACK" ArtifactsBucketName)
            # CloudFormation deletes only an empty bucket; its objects are uploaded templates.
            [ -z "$bucket" ] || aws_cli s3 rm --only-show-errors --recursive "s3://$bucket" || true
            if delete_stack "$BOOTSTRAP_STACK"; then
                deleted+=("$BOOTSTRAP_STACK: ECR repositories with their images (EmptyOnDelete; rebuilt from git by the next up), the ECR Public pull-through cache rule and its collector repository, the template bucket")
            else
                failed+=("$BOOTSTRAP_STACK")
            fi
        fi
    fi
    if [ "$(stack_status "$NETWORK_STACK")" != NONE ]; then
        if delete_stack "$NETWORK_STACK"; then
            deleted+=("$NETWORK_STACK: VPC, subnets, routes, endpoints or NAT gateways and their addresses")
        else
            failed+=("$NETWORK_STACK")
        fi
    fi
    echo
    echo "deleted:"
    [ ${#deleted[@]} -gt 0 ] && printf '  - %s\n' "${deleted[@]}" || echo "  (nothing)"
    echo "kept:"
    [ ${#kept[@]} -gt 0 ] && printf '  - %s\n' "${kept[@]}" || echo "  (nothing)"
    if [ ${#failed[@]} -gt 0 ]; then
        echo "NOT deleted (see the messages above; run down again once fixed):"
        printf '  - %s\n' "${failed[@]}"
        return 1
    fi
}

"cmd_$COMMAND"
