# Sourced by scripts/gen-sdks and scripts/test-sdks: a private Python virtual environment with
# the pinned generator and test tools (sdk/python/requirements-dev.txt), reinstalled only when
# that file changes. Its directory: STARFIRE_SDK_TOOLS, default target/sdk-tools.
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
