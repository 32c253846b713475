# The RS256/EdDSA signing key of auth-svc, for ecs/deploy.sh (sourced; uses its say/die/aws_cli
# and NAME_PREFIX).
#
#   signing_key_check ALG    dies unless the secret is absent or holds an ALG key (before `up`
#                            changes anything)
#   signing_key_ensure ALG   sets SIGNING_KEY_ARN to the secret <stack>-jwt-signing-key, creating
#                            it first when it does not exist: a key generated here with openssl
#                            (Secrets Manager cannot generate RSA or Ed25519 keys), piped from
#                            openssl into Secrets Manager through this shell's memory. It is never
#                            printed, never written to a file and never a CloudFormation parameter
#                            value (the stack gets the secret's ARN). A secret that `down`
#                            scheduled for deletion is restored.
#   signing_key_state        "absent", "active <arn> <alg>" or "deleted <arn> <alg> <deletion date>"
#                            (<alg> is the jwt-alg tag, "-" when there is none)
#   signing_key_schedule_deletion
#                            schedules the secret for deletion after SIGNING_KEY_RECOVERY_DAYS;
#                            echoes what it did (or nothing when there is no active secret)
#
# The secret's value is what auth-svc reads (JWT_SECRET_ARN): {"alg": "RS256"|"EdDSA",
# "private_key": "<PKCS#8 PEM>"}; its tag jwt-alg names the algorithm, so `up` can compare the
# existing key with --jwt-alg without reading the key.

SIGNING_KEY_RECOVERY_DAYS=7

signing_key_name() { echo "$NAME_PREFIX-jwt-signing-key"; }

signing_key_state() {
    local out err
    if ! out=$(aws_cli secretsmanager describe-secret --secret-id "$(signing_key_name)" --output text \
        --query '[ARN, Tags[?Key==`jwt-alg`].Value | [0], DeletedDate]' 2>&1); then
        err=$out
        [[ "$err" == *ResourceNotFoundException* ]] && { echo absent; return 0; }
        die "secretsmanager describe-secret $(signing_key_name): $(echo "$err" | tail -1)"
    fi
    local arn alg deleted
    IFS=$'\t' read -r arn alg deleted <<<"$out"
    [ -n "$alg" ] && [ "$alg" != None ] || alg=-   # no jwt-alg tag
    if [ -n "$deleted" ] && [ "$deleted" != None ]; then
        echo "deleted $arn $alg $deleted"
    else
        echo "active $arn $alg"
    fi
}

# The SecretString for a new key of ALG, on stdout (only ever into a pipe or a variable).
signing_key_generate() {
    local pem
    case "$1" in
        RS256) pem=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null) ;;
        EdDSA) pem=$(openssl genpkey -algorithm ed25519 2>/dev/null) ;;
        *) die "signing_key_generate: $1 is not RS256 or EdDSA" ;;
    esac || die "openssl could not generate a $1 key (OpenSSL 1.1.1 or later is needed for Ed25519)"
    [[ "$pem" == "-----BEGIN PRIVATE KEY-----"* ]] || die "openssl printed no PKCS#8 private key for $1"
    # JSON-encoded by python from its stdin: the key is never an argument of any process.
    printf '%s\n' "$pem" | python3 -c 'import json, sys; print(json.dumps({"alg": sys.argv[1], "private_key": sys.stdin.read()}))' "$1"
}

signing_key_check() {
    local alg=$1 state existing
    state=$(signing_key_state)
    [ "$state" != absent ] || return 0
    read -r _ _ existing _ <<<"$state"
    [ "$existing" = "$alg" ] || die "signing key $(signing_key_name) is tagged jwt-alg=$existing, not $alg. The algorithm is chosen once per stack: deploy with --jwt-alg $existing, or see ecs/README.md \"Signing modes\" to change it"
}

signing_key_ensure() {
    local alg=$1 name state arn existing secret
    name=$(signing_key_name)
    state=$(signing_key_state)
    case "$state" in
        deleted\ *)
            read -r _ arn existing _ <<<"$state"
            say "signing key $name was scheduled for deletion (by down): restoring it"
            aws_cli secretsmanager restore-secret --secret-id "$name" >/dev/null
            state="active $arn $existing" ;;
    esac
    case "$state" in
        absent)
            say "signing key $name: generating a new $alg key with openssl and storing it in Secrets Manager (never printed)"
            secret=$(signing_key_generate "$alg")
            # file:///dev/stdin: the value reaches the AWS CLI through a pipe, not its arguments.
            SIGNING_KEY_ARN=$(printf '%s' "$secret" | aws_cli secretsmanager create-secret --name "$name" \
                --description "auth-svc's $alg signing key (ecs/deploy.sh; rotate: ecs/README.md)" \
                --tags "Key=jwt-alg,Value=$alg" --secret-string file:///dev/stdin --query ARN --output text)
            secret=""
            [ -n "$SIGNING_KEY_ARN" ] || die "create-secret $name returned no ARN" ;;
        active\ *)
            read -r _ arn existing <<<"$state"
            signing_key_check "$alg"
            say "signing key $name ($alg) exists: kept"
            SIGNING_KEY_ARN=$arn ;;
    esac
}

signing_key_schedule_deletion() {
    local state name
    name=$(signing_key_name)
    state=$(signing_key_state)
    [[ "$state" == active\ * ]] || return 0
    local when
    when=$(aws_cli secretsmanager delete-secret --secret-id "$name" --recovery-window-in-days "$SIGNING_KEY_RECOVERY_DAYS" \
        --query DeletionDate --output text)
    # AWS CLI v1 prints the timestamp as epoch seconds, v2 as ISO 8601: print UTC ISO 8601.
    when=$(python3 -c 'import datetime, sys
v = sys.argv[1]
try:
    v = datetime.datetime.fromtimestamp(float(v), datetime.timezone.utc).isoformat(timespec="seconds")
except ValueError:
    pass
print(v)' "$when")
    echo "$name: the RS256/EdDSA signing key, SCHEDULED for deletion on $when (a $SIGNING_KEY_RECOVERY_DAYS-day recovery window: aws secretsmanager restore-secret --secret-id $name, and the next up restores it; to delete it now: aws secretsmanager delete-secret --secret-id $name --force-delete-without-recovery)"
}
