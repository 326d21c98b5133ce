#!/usr/bin/env bash
# The one command to set up everything and run every check, from the repo root:
#
#     bash tests/run.sh [pytest args...]
#
# Installs PostgreSQL (the tests start their own throwaway server) and, on a bare
# machine, Python, creates .venv, installs the project with its test extras, then
# runs ruff, mypy and pytest. Works as root without a terminal (CI) and as a normal
# user (sudo is used only if something has to be installed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }
die() {
    printf '\nerror: %s\n' "$*" >&2
    exit 1
}

# Same search as tests/pg_server.py: pg_config --bindir, newest /usr/lib/postgresql/*/bin, PATH.
pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    fi
    while IFS= read -r dir; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r)
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

# True if "$1" is Python >= 3.11 able to create a venv (Debian needs python3-venv for that).
python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

section "System packages"
packages=()
if bindir="$(pg_bindir)"; then
    echo "PostgreSQL server binaries: $bindir"
else
    echo "PostgreSQL server binaries not found: will install postgresql"
    packages+=(postgresql)
fi
if [[ ! -x .venv/bin/python ]] && ! find_python >/dev/null; then
    echo "No Python >= 3.11 with venv support found: will install python3 python3-venv"
    packages+=(python3 python3-venv)
fi
if ((${#packages[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${packages[*]} and apt-get is not available: install PostgreSQL (server, with initdb and pg_ctl) and Python >= 3.11 yourself, then rerun."
    fi
    if [[ "$(id -u)" -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        die "need to install ${packages[*]} but not root and sudo is not available: run as root 'apt-get install ${packages[*]}', then rerun."
    fi
    echo "Installing: ${packages[*]}"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
    bindir="$(pg_bindir)" || die "postgresql was installed but initdb/pg_ctl are still not found."
    echo "PostgreSQL server binaries: $bindir"
fi

section "Python virtualenv (.venv)"
if [[ ! -x .venv/bin/python ]]; then
    python="$(find_python)" || die "Python >= 3.11 with the venv module is required (found: $(python3 --version 2>&1 || echo none)). Install it (Debian: apt-get install python3 python3-venv) and rerun."
    echo "Creating .venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv .venv
fi
.venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die ".venv uses $(.venv/bin/python --version 2>&1); Python >= 3.11 is required. Remove .venv and rerun."
echo "Using $(.venv/bin/python --version 2>&1)"
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'

failed=()

section "ruff check ."
.venv/bin/ruff check . || failed+=(ruff)

section "mypy"
.venv/bin/mypy || failed+=(mypy)

section "pytest -q $*"
# The slowest tests are listed after the results: where the suite's time goes.
.venv/bin/pytest -q --durations=15 "$@" || failed+=(pytest)

if ((${#failed[@]})); then
    die "failed: ${failed[*]}"
fi
section "All checks passed"
