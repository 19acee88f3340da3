#!/usr/bin/env bash
# curl against Sluice (`make run` first): JSON, then SSE streaming (-N shows events as they come).
# SLUICE_PORT (default 10000) and SLUICE_KEY (default: the demo consumer's key, sk-sluice-demo).
set -euo pipefail
PORT="${SLUICE_PORT:-10000}"
KEY="${SLUICE_KEY:-sk-sluice-demo}"
curl -sS --fail-with-body "http://127.0.0.1:$PORT/v1/chat/completions" \
  -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, Sluice!"}]}'
echo
curl -sSN --fail-with-body "http://127.0.0.1:$PORT/v1/chat/completions" \
  -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
  -d '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream me, Sluice!"}]}'
