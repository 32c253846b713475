# CloudFormation through change sets, for ecs/deploy.sh (sourced; uses its say/die/aws_cli).
#
#   stack_status NAME                     CREATE_COMPLETE, ..., or NONE
#   stack_output NAME KEY                 one output's value ("" when absent, or no such stack)
#   stack_parameter NAME KEY              one parameter's current value ("" when absent, or no such stack)
#   deploy_stack NAME TEMPLATE_ARG K=V... create or update NAME through a change set, print the
#                                         changes, execute, print events until it settles.
#                                         TEMPLATE_ARG: --template-body file://... or
#                                         --template-url https://...; sets STACK_CHANGED=0|1
#   delete_stack NAME                     delete NAME, print events until it is gone
#
# Real CloudFormation refuses an empty change set with status FAILED ("The submitted information
# didn't contain changes"); an UPDATE with an identical inline template may also be refused at
# creation ("No updates are to be performed"). Both mean: nothing to do.

POLL_SECS=${POLL_SECS:-5}
STACK_WAIT_SECS=${STACK_WAIT_SECS:-3600}

stack_status() {
    aws_cli cloudformation describe-stacks --stack-name "$1" --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE
}

# Both print "" for a stack that does not exist (describe-stacks fails then).
stack_output() {
    { aws_cli cloudformation describe-stacks --stack-name "$1" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue | [0]" --output text 2>/dev/null || true; } | sed 's/^None$//'
}

stack_parameter() {
    { aws_cli cloudformation describe-stacks --stack-name "$1" \
        --query "Stacks[0].Parameters[?ParameterKey=='$2'].ParameterValue | [0]" --output text 2>/dev/null || true; } | sed 's/^None$//'
}

# Prints stack events newer than those already printed (ids kept in $EVENTS_SEEN), oldest first.
print_new_events() {
    local name=$1 line id
    aws_cli cloudformation describe-stack-events --stack-name "$name" --output text \
        --query 'StackEvents[].[EventId,Timestamp,LogicalResourceId,ResourceType,ResourceStatus,ResourceStatusReason]' 2>/dev/null \
        | tac | while IFS=$'\t' read -r id ts logical type status reason; do
            [ -n "$id" ] || continue
            grep -qxF "$id" "$EVENTS_SEEN" 2>/dev/null && continue
            echo "$id" >>"$EVENTS_SEEN"
            [ "$reason" = None ] && reason=""
            printf '    %s  %-34s %-28s %s\n' "${ts:11:8}" "$logical" "$status" "$reason"
        done
}

# Marks every event so far as seen (the history of earlier deployments is not progress).
mark_events_seen() {
    aws_cli cloudformation describe-stack-events --stack-name "$1" --output text \
        --query 'StackEvents[].EventId' 2>/dev/null | tr '\t' '\n' >>"$EVENTS_SEEN" || true
}

# Waits until NAME leaves every *_IN_PROGRESS status, printing events; echoes the final status.
wait_stack() {
    local name=$1 start=$SECONDS status
    while :; do
        print_new_events "$name" >&2
        status=$(stack_status "$name")
        case "$status" in
            *_IN_PROGRESS) ;;
            *) echo "$status"; return 0 ;;
        esac
        [ $((SECONDS - start)) -lt "$STACK_WAIT_SECS" ] || { echo "TIMEOUT($status)"; return 0; }
        sleep "$POLL_SECS"
    done
}

deploy_stack() {
    local name=$1 template_flag=$2 template_arg=$3
    shift 3
    local status type cs reason cs_status params
    # JSON, not the CLI's shorthand: a subnet list "a,b" is one string value.
    params=$(python3 -c 'import json, sys; print(json.dumps([{"ParameterKey": a.split("=", 1)[0], "ParameterValue": a.split("=", 1)[1]} for a in sys.argv[1:]]))' "$@")
    STACK_CHANGED=0
    EVENTS_SEEN=$(mktemp)

    status=$(stack_status "$name")
    case "$status" in
        *_IN_PROGRESS)
            say "$name is $status (another operation): waiting for it to settle"
            status=$(wait_stack "$name") ;;
    esac
    if [ "$status" = ROLLBACK_COMPLETE ] || [ "$status" = ROLLBACK_FAILED ]; then
        # A first create that failed: CloudFormation can only delete it. Nothing it created is
        # kept (no retained resources), so the new attempt does not collide.
        say "$name is $status (its first create failed): deleting it before creating it again"
        delete_stack "$name" || die "$name: could not delete the failed stack"
        status=NONE
    fi
    if [ "$status" = NONE ] || [ "$status" = REVIEW_IN_PROGRESS ]; then type=CREATE; else type=UPDATE; fi
    mark_events_seen "$name"

    cs="deploy-$(date -u +%Y%m%d-%H%M%S)"
    local err
    if ! err=$(aws_cli cloudformation create-change-set --stack-name "$name" --change-set-name "$cs" \
        --change-set-type "$type" "$template_flag" "$template_arg" \
        --capabilities CAPABILITY_IAM ${CFN_ROLE_ARN:+--role-arn "$CFN_ROLE_ARN"} \
        --parameters "$params" --output text --query Id 2>&1 >/dev/null); then
        if [[ "$err" == *"No updates are to be performed"* ]]; then
            say "$name: no changes"
            rm -f "$EVENTS_SEEN"
            return 0
        fi
        die "$name: create-change-set failed: $err"
    fi

    local start=$SECONDS
    while :; do
        cs_status=$(aws_cli cloudformation describe-change-set --stack-name "$name" --change-set-name "$cs" \
            --query '[Status,StatusReason]' --output text)
        case "${cs_status%%$'\t'*}" in
            CREATE_COMPLETE) break ;;
            FAILED)
                reason=${cs_status#*$'\t'}
                aws_cli cloudformation delete-change-set --stack-name "$name" --change-set-name "$cs" >/dev/null 2>&1 || true
                if [[ "$reason" == *"didn't contain changes"* || "$reason" == *"No updates are to be performed"* ]]; then
                    say "$name: no changes"
                    rm -f "$EVENTS_SEEN"
                    return 0
                fi
                die "$name: change set failed: $reason" ;;
        esac
        [ $((SECONDS - start)) -lt 600 ] || die "$name: change set $cs not ready after 600 s (${cs_status})"
        sleep "$POLL_SECS"
    done

    say "$name: $type change set $cs:"
    aws_cli cloudformation describe-change-set --stack-name "$name" --change-set-name "$cs" --output text \
        --query 'Changes[].ResourceChange.[Action,LogicalResourceId,ResourceType,Replacement]' \
        | awk -F'\t' '{r = ($4 == "True") ? "  (replacement)" : ""; printf "    %-8s %-34s %s%s\n", $1, $2, $3, r}'
    aws_cli cloudformation execute-change-set --stack-name "$name" --change-set-name "$cs" >/dev/null
    say "$name: executing (events as they happen)"
    status=$(wait_stack "$name")
    rm -f "$EVENTS_SEEN"
    case "$status" in
        CREATE_COMPLETE | UPDATE_COMPLETE) STACK_CHANGED=1; say "$name: $status" ;;
        *) die "$name: ended $status; the events above say why (aws cloudformation describe-stack-events --stack-name $name)" ;;
    esac
}

# Returns non-zero (after saying why) when the stack could not be deleted.
delete_stack() {
    local name=$1 status err
    [ "$(stack_status "$name")" != NONE ] || return 0
    EVENTS_SEEN=${EVENTS_SEEN:-$(mktemp)}
    mark_events_seen "$name"
    if ! err=$(aws_cli cloudformation delete-stack --stack-name "$name" ${CFN_ROLE_ARN:+--role-arn "$CFN_ROLE_ARN"} 2>&1); then
        say "$name: delete-stack refused: $(echo "$err" | tr -s '\n' ' ')"
        return 1
    fi
    say "$name: deleting (events as they happen)"
    status=$(wait_stack "$name")
    case "$status" in
        DELETE_COMPLETE | NONE) say "$name: deleted" ;;
        *) say "$name: delete ended $status; the events above say why"; return 1 ;;
    esac
}
