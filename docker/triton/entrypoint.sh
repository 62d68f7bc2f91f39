#!/usr/bin/env bash
# Entry point of both Triton images (CPU and GPU): tritonserver with the flags
# production uses, from environment variables, then any arguments given.
# Later flags win, so `docker run IMAGE --http-port=9000` overrides a default.
# A first argument that is not a flag runs that command instead (a shell, say).
#
#   TRITON_MODEL_REPOSITORY    default /models (baked into the image)
#   TRITON_MODEL_CONTROL_MODE  none | explicit | poll (default none)
#   TRITON_CACHE_SIZE          response cache bytes (default 67108864; 0: off)
#   TRITON_EXIT_TIMEOUT_SECS   in-flight drain on SIGTERM (default 30)
#   TRITON_MODEL_CONFIG_NAME   e.g. gpu: configs/gpu.pbtxt where a model has one
#   TRITON_HTTP_HEADER_FORWARD_PATTERN  HTTP headers handed to models as request
#                              parameters (default: the gateway's traceparent and X-Request-Id)
set -euo pipefail

if [[ $# -gt 0 && "$1" != -* ]]; then exec "$@"; fi

args=(
  --model-repository="${TRITON_MODEL_REPOSITORY:-/models}"
  --model-control-mode="${TRITON_MODEL_CONTROL_MODE:-none}"
  --strict-readiness=true
  --exit-on-error=true
  --disable-auto-complete-config
  --exit-timeout-secs="${TRITON_EXIT_TIMEOUT_SECS:-30}"
  --allow-metrics=true
  --http-header-forward-pattern="${TRITON_HTTP_HEADER_FORWARD_PATTERN:-(?i)^(traceparent|x-request-id)\$}"
  --log-verbose=0
)
cache="${TRITON_CACHE_SIZE:-67108864}"
[[ "$cache" == 0 ]] || args+=(--cache-config="local,size=$cache")
[[ -z "${TRITON_MODEL_CONFIG_NAME:-}" ]] || args+=(--model-config-name="$TRITON_MODEL_CONFIG_NAME")

exec tritonserver "${args[@]}" "$@"
