#!/usr/bin/env bash
# ensure_venv.sh <venv dir> <python MAJOR.MINOR> <requirements file>
# Creates or updates the virtualenv; a stamp holding the requirements file's sha256 (and the
# interpreter version) makes a second run a no-op until the requirements change.
set -euo pipefail

venv="${1:?venv dir}"; version="${2:?python version}"; requirements="${3:?requirements file}"
here="$(cd "$(dirname "$0")" && pwd)"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1) python$version"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv is up to date ($requirements unchanged)"
  exit 0
fi

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c \
    "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$version' else 1)"; then
  echo "updating $venv from $requirements"
else
  python="$("$here/find_python.sh" "$version")"
  echo "creating $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
echo "$venv is ready"
