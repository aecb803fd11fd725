#!/usr/bin/env bash
# Print the path of a working python<MAJOR.MINOR> interpreter: on PATH first, then under pyenv
# (pyenv shims only answer when the version is active, e.g. PYENV_VERSION=3.11.7:3.12.1:3.13.0,
# so the interpreters under $(pyenv root)/versions are tried directly too).
set -euo pipefail

want="${1:?usage: find_python.sh 3.11}"
works() { [ -x "$1" ] && "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; }

if candidate="$(command -v "python$want" 2>/dev/null)" && works "$candidate"; then
  "$candidate" -c 'import sys; print(sys.executable)'; exit 0
fi
roots=()
if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
for root in "${roots[@]}"; do
  # Newest patch release first.
  for candidate in $(ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV); do
    if works "$candidate"; then echo "$candidate"; exit 0; fi
  done
done
echo "error: python$want not found on PATH or under pyenv." >&2
echo "  Install it (e.g. 'pyenv install $want') or make it visible: PYENV_VERSION=3.11.7:3.12.1:3.13.0" >&2
exit 1
