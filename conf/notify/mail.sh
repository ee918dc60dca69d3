#!/bin/sh
# [notify] command = "/etc/pgvault/notify/mail.sh"
# Mails the event (JSON on stdin) to $PGVAULT_MAILTO (default root) with mail(1), or sendmail(8).
to="${PGVAULT_MAILTO:-root}"
subject="pgvault: $PGVAULT_TOOL $PGVAULT_EVENT (exit $PGVAULT_EXIT_CODE) on $(hostname)"
if command -v mail >/dev/null 2>&1; then
  mail -s "$subject" "$to"
else
  { printf 'To: %s\nSubject: %s\n\n' "$to" "$subject"; cat; } | /usr/sbin/sendmail -t
fi
