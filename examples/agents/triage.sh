#!/bin/sh
# triage.sh — a hookd agent that asks a local Ollama model to classify an issue.
#
# Usage (as a hookd rule's run.command):
#   command: ["examples/agents/triage.sh", "--model", "qwen2.5-coder:7b"]
#
# Contract (the same as any hookd `run` command; see processor/rules/doc.go):
#   stdin        the webhook event JSON (issues or issue_comment events)
#   stdout       Markdown: a classification (bug, feature, question or docs) and a short reason
#   exit status  0 ok; 75 (EX_TEMPFAIL) when Ollama is unreachable or fails, so hookd retries
#                soon; 64 on bad usage
#
# Settings: --model NAME (default qwen2.5-coder:7b), OLLAMA_URL (default http://127.0.0.1:11434).
# Needs sh, curl, sed, tr; uses jq when installed to build and read JSON exactly.
set -eu

model=qwen2.5-coder:7b
while [ $# -gt 0 ]; do
	case "$1" in
	--model) [ $# -ge 2 ] || { echo "triage.sh: --model needs a value" >&2; exit 64; }; model=$2; shift 2 ;;
	*) echo "triage.sh: unknown argument: $1 (usage: triage.sh [--model NAME])" >&2; exit 64 ;;
	esac
done
ollama=${OLLAMA_URL:-http://127.0.0.1:11434}

event_json=$(cat)
have_jq=false
command -v jq >/dev/null 2>&1 && have_jq=true

# field NAME: the (or pull request's) string field, JSON escapes kept when jq is absent.
field() {
	if $have_jq; then
		printf '%s' "$event_json" | jq -r "(.issue // .pull_request // {}).$1 // empty"
	else
		printf '%s' "$event_json" | grep -oE "\"$1\"[[:space:]]*:[[:space:]]*\"([^\"\\\\]|\\\\.)*\"" | head -n 1 |
			sed -e "s/^\"$1\"[[:space:]]*:[[:space:]]*\"//" -e 's/"$//'
	fi
}
title=$(field title)
body=$(field body)

instructions='Classify this GitHub issue as exactly one of: bug, feature, question, docs. Answer in Markdown: a first line "**Classification:** <label>", then at most three sentences explaining why. Do not repeat the issue.'

if $have_jq; then
	prompt=$(printf '%s\n\nTitle: %s\n\n%s' "$instructions" "$title" "$body")
	request=$(jq -n --arg model "$model" --arg prompt "$prompt" '{model: $model, prompt: $prompt, stream: false}')
else
	# title and body are still JSON-escaped; escape the instructions the same way.
	esc_instructions=$(printf '%s' "$instructions" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
	request=$(printf '{"model":"%s","prompt":"%s\\n\\nTitle: %s\\n\\n%s","stream":false}' "$model" "$esc_instructions" "$title" "$body")
fi

if ! command -v curl >/dev/null 2>&1; then
	echo "triage.sh: curl is not installed" >&2
	exit 75
fi
if ! response=$(curl -fsS --max-time 600 -H 'Content-Type: application/json' -d "$request" "$ollama/api/generate" 2>&1); then
	printf '### Automatic triage unavailable\n\n'
	printf 'The local model (`%s` on %s) could not be reached, so this issue was not classified yet. hookd will try again.\n' "$model" "$ollama"
	echo "triage.sh: Ollama request failed: $response" >&2
	exit 75
fi

if $have_jq; then
	answer=$(printf '%s' "$response" | jq -r '.response // empty')
else
	answer=$(printf '%s' "$response" | grep -oE '"response"[[:space:]]*:[[:space:]]*"([^"\\]|\\.)*"' | head -n 1 |
		sed -e 's/^"response"[[:space:]]*:[[:space:]]*"//' -e 's/"$//' -e 's/\\n/\
/g' -e 's/\\t/	/g' -e 's/\\"/"/g' -e 's/\\\\/\\/g')
fi
if [ -z "$answer" ]; then
	echo "triage.sh: Ollama answered without a response field: $response" >&2
	exit 75
fi

printf '### Automatic triage\n\n%s\n\n<sub>Classified by `%s` via hookd. Reply `/explain` for more.</sub>\n' "$answer" "$model"
