"""The web_logs job: web requests, hourly traffic and error paths from daily access logs."""
