#!/usr/bin/env bash
# Makes sure the browser tests (tests/browser.py) have what they drive: Debian's Chromium at
# /usr/bin/chromium, run headless through Playwright's Python package, and a CJK font so that
# screenshots of Chinese pages show characters instead of boxes.
#
#   scripts/ensure-browser.sh      (make browser)
#
# Present: returns at once. Missing, as root with apt-get: installs Debian's packages
# (apt-get update first when the package lists do not know them). Otherwise: says what to
# install and fails. Never downloads a browser build of its own (no `playwright install`).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

have_chromium() { [ -x "$CHROMIUM" ]; }
# Any installed font that covers Chinese will do (fonts-noto-cjk is the one we install).
have_cjk_font() { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list ':lang=zh' family 2>/dev/null)" ]; }

missing=()
# Reports as PDF: WeasyPrint draws with pango; the tests read the PDFs back with poppler.
have_pango() { ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0.so.0; }
have_poppler() { command -v pdftotext >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; }
have_chromium || missing+=(chromium)
have_cjk_font || missing+=(fonts-noto-cjk)
have_pango || missing+=(libpangoft2-1.0-0)
have_poppler || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0

describe() {
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      chromium) echo "  - $CHROMIUM (Debian package chromium)" ;;
      fonts-noto-cjk) echo "  - a CJK font for Chinese text in screenshots (Debian package fonts-noto-cjk)" ;;
      libpangoft2-1.0-0) echo "  - pango, which WeasyPrint draws the PDF reports with (Debian package libpangoft2-1.0-0)" ;;
      poppler-utils) echo "  - pdftotext and pdftoppm, to read the PDF reports back in tests (Debian package poppler-utils)" ;;
    esac
  done
}

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  {
    echo "error: the browser tests need:"
    describe
    if command -v apt-get >/dev/null 2>&1; then
      echo "Install them as root, then run the command again:"
      echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}"
    else
      echo "This is not a Debian-like system (no apt-get): install Chromium at $CHROMIUM and a CJK"
      echo "font (Noto Sans CJK) with the system's package manager, then run the command again."
    fi
  } >&2
  exit 1
fi

echo "==> installing for the browser tests: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (a second `make`) instead of failing on its lock.
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

# The package lists may be absent (a fresh image) or stale (versions since replaced on the
# mirror): update first when they do not offer every package, and once more if install fails.
lists_offer_all() {
  local pkg
  for pkg in "${missing[@]}"; do
    apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]' || return 1
  done
}
updated=0
if ! lists_offer_all; then
  "${APT[@]}" update -qq
  updated=1
fi
if ! "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then
  [ "$updated" -eq 1 ] && { echo "error: apt-get could not install: ${missing[*]}" >&2; exit 1; }
  "${APT[@]}" update -qq
  "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi

have_chromium || { echo "error: $CHROMIUM is still missing after installing chromium" >&2; exit 1; }
have_cjk_font || { echo "error: no CJK font found by fc-list after installing fonts-noto-cjk" >&2; exit 1; }
echo "==> $("$CHROMIUM" --version 2>/dev/null || echo chromium) with a CJK font"
