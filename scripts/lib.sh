# Shared shell helpers for scripts/*. Source it; do not run it.
# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source it
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENV="${VENV:-$ROOT/.venv}"
RUNTIME="${TRITON_RUNTIME:-$ROOT/.triton}"
TRITON_HOME="$RUNTIME/pytriton/tritonserver"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Environment for anything that runs Triton's binaries or Python models.
triton_env() {
  export PATH="$VENV/bin:$RUNTIME/bin:$PATH"
  export LD_LIBRARY_PATH="$RUNTIME/nvidia_pytriton.libs:$VENV/lib/python3.11/site-packages/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# --- Docker ------------------------------------------------------------------
# Images are built with BuildKit (build secrets, cache mounts). A Docker CLI
# without the buildx plugin refuses DOCKER_BUILDKIT=1, while Debian's docker.io
# 20.10 CLI (/usr/bin/docker) carries BuildKit itself: use it when buildx is absent.
docker_env() {
  export DOCKER_BUILDKIT=1
  if docker buildx version >/dev/null 2>&1; then DOCKER=docker
  elif [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker
  else DOCKER=docker
  fi
}
docker_answers() { docker_env; "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
