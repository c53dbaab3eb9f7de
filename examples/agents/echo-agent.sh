#!/bin/sh
# echo-agent.sh — a tiny deterministic hookd agent, for `hookd demo` and tests.
#
# Contract (the same as any hookd `run` command; see processor/rules/doc.go):
#   stdin                 the webhook event JSON
#   HOOKD_EVENT, HOOKD_ACTION, HOOKD_REPOSITORY, HOOKD_ISSUE_NUMBER, HOOKD_RULE, ...
#   stdout                Markdown; a rule usually posts it with  comment: {body: "{{ .Run.Stdout }}"}
#   exit status           0 ok; 75 asks hookd to retry soon; anything else is a failure
#
# It prints the issue or pull request title and the number of words in its body. It needs only
# sh, grep, sed, head, tr and wc; it uses jq when installed. It never calls the network.
set -eu

event_json=$(cat)

# field NAME: the first JSON string value of "NAME" in the event (the issue or pull request
# object comes before the repository in GitHub payloads).
field() {
	if command -v jq >/dev/null 2>&1; then
		printf '%s' "$event_json" | jq -r "(.issue // .pull_request // {}).$1 // empty"
	else
		printf '%s' "$event_json" | grep -oE "\"$1\"[[:space:]]*:[[:space:]]*\"([^\"\\\\]|\\\\.)*\"" | head -n 1 |
			sed -e "s/^\"$1\"[[:space:]]*:[[:space:]]*\"//" -e 's/"$//' -e 's/\\n/ /g' -e 's/\\r//g' -e 's/\\t/ /g' -e 's/\\"/"/g' -e 's/\\\\/\\/g'
	fi
}

title=$(field title)
body=$(field body)
words=$(printf '%s\n' "$body" | wc -w | tr -d ' ')

event=${HOOKD_EVENT:-unknown}
[ -n "${HOOKD_ACTION:-}" ] && event="$event.$HOOKD_ACTION"
where=${HOOKD_REPOSITORY:-unknown repository}
[ -n "${HOOKD_ISSUE_NUMBER:-}" ] && where="$where#$HOOKD_ISSUE_NUMBER"

printf '### hookd echo agent\n\n'
printf -- '- **Event:** `%s` on %s\n' "$event" "$where"
printf -- '- **Title:** %s\n' "${title:-(none)}"
printf -- '- **Words in the description:** %s\n' "$words"
