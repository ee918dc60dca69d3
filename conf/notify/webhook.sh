#!/bin/sh
# [notify] command = "PGVAULT_WEBHOOK_URL=https://hooks.slack.com/services/... /etc/pgvault/notify/webhook.sh"
# Posts one line to a Slack, Discord or Microsoft Teams incoming webhook with curl. Slack and Teams read
# "text", Discord reads "content"; both are sent. The JSON event arrives on stdin (unused here: the
# environment has what the line needs); PGVAULT_MESSAGE is JSON-escaped with sed.
msg=$(printf '%s' "pgvault on $(hostname): $PGVAULT_TOOL $PGVAULT_EVENT (exit $PGVAULT_EXIT_CODE) $PGVAULT_MESSAGE" |
      sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')
exec curl -fsS --max-time 20 -H 'Content-Type: application/json' \
  -d "{\"text\": \"$msg\", \"content\": \"$msg\"}" "$PGVAULT_WEBHOOK_URL"
