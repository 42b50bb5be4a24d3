# Sourced by scripts/gen-sdks and scripts/test-sdks.
#
# sdk_tools_install: a private Python virtual environment with the pinned generator and test
# tools (sdk/python/requirements-dev.txt), reinstalled only when that file changes. Its
# directory: STARFIRE_SDK_TOOLS, default target/sdk-tools.
#
# sdk_node_install: the TypeScript SDK's pinned generator, compiler and `ws`
# (sdk/typescript/package-lock.json) in sdk/typescript/node_modules, reinstalled only when the
# lock file changes.
SDK_TOOLS="${STARFIRE_SDK_TOOLS:-${CARGO_TARGET_DIR:-target}/sdk-tools}"
# Absolute: the generator runs its formatter from another directory through PATH.
case "$SDK_TOOLS" in /*) ;; *) SDK_TOOLS="$PWD/$SDK_TOOLS" ;; esac
SDK_PY="$SDK_TOOLS/py"
sdk_tools_install() {
  local req=sdk/python/requirements-dev.txt stamp="$SDK_PY/.requirements"
  if [ ! -x "$SDK_PY/bin/python" ]; then
    python3 -m venv "$SDK_PY"
  fi
  if ! cmp -s "$req" "$stamp"; then
    "$SDK_PY/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
  export PATH="$SDK_PY/bin:$PATH"
}
sdk_node_install() {
  local dir=sdk/typescript
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-package-lock.json"; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-package-lock.json"
  fi
}
