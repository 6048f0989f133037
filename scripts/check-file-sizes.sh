#!/usr/bin/env bash
# Refuse tracked files over a size limit (default 1 MiB): wheels, archives and data sets
# belong in a package registry or object store, not in git history. Run by `make lint`.
set -euo pipefail
limit_bytes=${ASYA_MAX_TRACKED_FILE_BYTES:-1048576}
cd "$(git rev-parse --show-toplevel)"
status=0
while IFS= read -r -d '' path; do
  [[ -f $path ]] || continue   # deleted in the work tree, not yet committed
  size=$(stat -c %s -- "$path")
  if (( size > limit_bytes )); then
    echo "check-file-sizes: $path is $size bytes (limit $limit_bytes): keep it out of git" >&2
    status=1
  fi
done < <(git ls-files -z)
exit $status
