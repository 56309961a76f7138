#!/usr/bin/env bash
# Makes sure HAProxy is installed: `make run` puts it in front of several Rasa, action-server and
# gateway processes when the machine has more than one core (bot/app/balancer.py), and the
# replica end-to-end test (tests/e2e/test_e2e_replicas.py) starts it too. Debian's package
# (2.6 on bookworm), run in the foreground as a child of the stack's supervisor; never a service.
#
#   scripts/ensure-haproxy.sh              (make haproxy; make test)
#   scripts/ensure-haproxy.sh --if-needed  (make run: nothing to do when it starts one process of
#                                           each: a one-core machine, or RASA_REPLICAS=1
#                                           ACTION_REPLICAS=1 GATEWAY_REPLICAS=1)
#
# Present: returns at once. Missing, as root with apt-get: installs Debian's haproxy package
# (apt-get update first when the package lists do not know it) and keeps the system service it
# brings stopped and disabled. Otherwise: says what to install and fails.
set -euo pipefail

have_haproxy() { command -v haproxy >/dev/null 2>&1; }
have_haproxy && exit 0

if [ "${1:-}" = "--if-needed" ]; then
  # The defaults of bot/app/balancer.py: a Rasa process and an action server per core, two gateways.
  cores=$(nproc 2>/dev/null || echo 1)
  gateways=$(( cores < 2 ? cores : 2 ))
  [ "${RASA_REPLICAS:-$cores}" -le 1 ] && [ "${ACTION_REPLICAS:-$cores}" -le 1 ] \
    && [ "${GATEWAY_REPLICAS:-$gateways}" -le 1 ] && exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  {
    echo "error: HAProxy is missing (the load balancer in front of the Rasa, action-server and gateway"
    echo "replicas that make run starts on a machine with more than one core)."
    if command -v apt-get >/dev/null 2>&1; then
      echo "Install it as root, then run the command again:"
      echo "  sudo apt-get install -y --no-install-recommends haproxy"
    else
      echo "This is not a Debian-like system (no apt-get): install HAProxy 2.6 or newer with the system's"
      echo "package manager (the haproxy binary on PATH), then run the command again."
    fi
    echo "Or run one process of each without HAProxy: RASA_REPLICAS=1 ACTION_REPLICAS=1 GATEWAY_REPLICAS=1 make run"
  } >&2
  exit 1
fi

echo "==> installing HAProxy (Debian package haproxy)"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (a second `make`) instead of failing on its lock.
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
# The package's maintainer scripts would start the system-wide haproxy service (on port 80 and a
# stats socket of its own); the stack runs its own haproxy instead. policy-rc.d exit 101 = "do not
# start services" for invoke-rc.d during this install only.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod +x "$POLICY" && made_policy=1
fi
cleanup() { [ "$made_policy" -eq 1 ] && rm -f "$POLICY"; return 0; }
trap cleanup EXIT

updated=0
if ! apt-cache policy haproxy 2>/dev/null | grep -q 'Candidate: [^(]'; then
  "${APT[@]}" update -qq
  updated=1
fi
if ! "${APT[@]}" install -y -qq --no-install-recommends haproxy; then
  [ "$updated" -eq 1 ] && { echo "error: apt-get could not install haproxy" >&2; exit 1; }
  "${APT[@]}" update -qq
  "${APT[@]}" install -y -qq --no-install-recommends haproxy
fi
# Where systemd runs, keep the packaged service off (no-op in a container without it).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi

have_haproxy || { echo "error: haproxy is still missing after installing the haproxy package" >&2; exit 1; }
echo "==> $(haproxy -v 2>/dev/null | head -n 1)"
