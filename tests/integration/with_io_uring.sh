#!/bin/sh
# Runs the integration suite with every Ferry on the io_uring backend, or skips it (exit 77,
# which meson reports as SKIP) with the reason when io_uring cannot run on this machine.
#   with_io_uring.sh FERRY_BIN INTEGRATION_TESTS [ARGS...]
ferry=$1
tests=$2
shift 2
if ! why=$("$ferry" --probe-io); then
  echo "SKIP: integration tests on io_uring: $why"
  exit 77
fi
echo "integration tests on io_uring ($why)"
FERRY_IO=io_uring exec "$tests" "$@"
