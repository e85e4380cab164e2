#!/usr/bin/env bash
# Install everything the tests need (apt-get, pip, npm, go install), then run the whole
# suite. Exits non-zero on any failure, and when no test ran.
#
#   ci/test.sh [pytest arguments]     e.g. ci/test.sh tests/services -k rng
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_redis
ensure_venv tests/*/requirements.txt
ci/podman-setup.sh        # podman, buildah and local base images: tests/containers

export PATH="$ROOT/.tools/bin:$PATH"
set +e
python -m pytest "${@:-tests}"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "ci/test.sh: no test ran; that is a failure" >&2
  exit 1
fi
exit "$status"
