#!/usr/bin/env bash
# Dialwatch installer for Debian 12 / Ubuntu. Idempotent: run it again any time.
#
#   sudo ./install.sh --run      install, then run the appliance on embedded defaults
#   sudo ./install.sh --test     install, install the test peers, run lint + the test suite
#   sudo ./install.sh --service  install and enable a systemd unit (dialwatch.service)
#   ./install.sh                 install only
#
# Options: --config-dir DIR (default /etc/dialwatch as root, ./etc otherwise)
#          --data-dir DIR   (default /var/lib/dialwatch as root, ./data otherwise)
#          --listen HOST:PORT (default 127.0.0.1:8080)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

mode=install
listen="127.0.0.1:8080"
if [ "$(id -u)" -eq 0 ]; then
    config_dir=/etc/dialwatch
    data_dir=/var/lib/dialwatch
else
    config_dir="$here/etc"
    data_dir="$here/data"
fi

die() { echo "install.sh: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --run) mode=run ;;
        --test) mode=test ;;
        --service) mode=service ;;
        --config-dir) config_dir="${2:?--config-dir needs a directory}"; shift ;;
        --data-dir) data_dir="${2:?--data-dir needs a directory}"; shift ;;
        --listen) listen="${2:?--listen needs HOST:PORT}"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (allowed: --run, --test, --service, --config-dir, --data-dir, --listen)" ;;
    esac
    shift
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $* (run install.sh as root or install sudo)"
    fi
}

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null; then
        die "apt-get not found: install these packages by hand: $*"
    fi
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -q || die "apt-get update failed (is the package mirror reachable?)"
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
        || die "apt-get install $* failed"
}

# --- Python 3.11+ with venv -------------------------------------------------
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$(command -v "$candidate")"
        break
    fi
done
[ -n "$python" ] || { step "installing python3"; apt_install python3; python="$(command -v python3)"; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is required, found $("$python" --version 2>&1)"

if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    step "installing python3-venv (stock Debian ships python3 without venv/ensurepip)"
    pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    # python3-venv covers Debian's default python3; another 3.1x needs its own package
    if [ "$pyver" = "$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null)" ]; then
        apt_install python3-venv
    else
        apt_install "python${pyver}-venv"
    fi
fi

# --- virtualenv and the package ---------------------------------------------
if [ ! -x .venv/bin/python ]; then
    step "creating .venv"
    "$python" -m venv .venv || die "could not create the virtualenv in $here/.venv"
fi
extras=""
[ "$mode" = test ] && extras="[test]"
step "installing dialwatch$extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null || die "could not upgrade pip in .venv"
.venv/bin/python -m pip install -q -e ".$extras" || die "pip install of dialwatch failed (see above)"

# --- uPlot: the console's charts, served by the appliance itself --------------
# From the npm registry at a pinned version, checked against the integrity npm
# publishes for it, copied into web/static/vendor/ (gitignored). Never a CDN:
# the console must draw its charts while the internet is down.
UPLOT_VERSION=1.6.32
UPLOT_INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
install_uplot() {
    local vendor="$here/web/static/vendor" tmp tarball got
    if [ -f "$vendor/uPlot.iife.min.js" ] && [ -f "$vendor/uPlot.min.css" ] \
        && [ "$(cat "$vendor/uPlot.version" 2>/dev/null)" = "$UPLOT_VERSION" ]; then
        return 0
    fi
    command -v npm >/dev/null || { step "installing npm (to fetch uPlot)"; apt_install npm; }
    step "fetching uPlot $UPLOT_VERSION from the npm registry into web/static/vendor/"
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null) \
        || { rm -rf "$tmp"; die "npm pack uplot@$UPLOT_VERSION failed (is the npm registry reachable? npm config get registry)"; }
    tarball="$tmp/uplot-$UPLOT_VERSION.tgz"
    got="sha512-$("$python" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
    if [ "$got" != "$UPLOT_INTEGRITY" ]; then
        rm -rf "$tmp"
        die "uplot-$UPLOT_VERSION.tgz does not match its pinned integrity (got $got)"
    fi
    tar -xzf "$tarball" -C "$tmp" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE \
        || { rm -rf "$tmp"; die "could not unpack $tarball"; }
    mkdir -p "$vendor"
    cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$vendor/"
    cp "$tmp/package/LICENSE" "$vendor/uPlot.LICENSE.txt"
    echo "$UPLOT_VERSION" > "$vendor/uPlot.version"
    rm -rf "$tmp"
}
install_uplot

# --- data directory and starter config --------------------------------------
# The test mode touches neither /etc nor /var/lib: tests make their own temp dirs.
if [ "$mode" = test ]; then
    .venv/bin/dialwatch check-config config/dialwatch.yaml || die "the starter config is not valid"
else
mkdir -p "$data_dir" "$config_dir" || die "could not create $data_dir or $config_dir"
config="$config_dir/dialwatch.yaml"
if [ ! -e "$config" ]; then
    step "writing starter config $config"
    cp config/dialwatch.yaml "$config" || die "could not write $config"
fi
.venv/bin/dialwatch check-config "$config" || die "$config is not valid (see the errors above)"
# The web push (VAPID) key: browsers subscribe to it, so it is made once and kept (0600).
push_key=$(.venv/bin/dialwatch vapid-key --data "$data_dir") \
    || die "could not make the web push key in $data_dir/keys (see above)"
step "web push key $data_dir/keys/vapid.pem (public key $push_key)"
fi

# --- test peers ---------------------------------------------------------------
install_test_peers() {
    # binary -> Debian package; only install what is missing
    local missing=() pair bin pkg
    for pair in sipp:sip-tester kamailio:kamailio snmpd:snmpd snmpget:snmp sshd:openssh-server \
                influxd:influxdb victoria-metrics:victoria-metrics chromium:chromium \
                chromedriver:chromium-driver dnsmasq:dnsmasq-base socat:socat \
                ssh-keygen:openssh-client pg_ctlcluster:postgresql mariadbd:mariadb-server \
                wrk:wrk; do  # wrk: bench/status_crowd.py
        bin="${pair%%:*}"; pkg="${pair#*:}"
        command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
    done
    # A CJK font, so headless Chromium draws the zh-CN pages in tests and screenshots.
    [ "$(dpkg-query -W -f='${Status}' fonts-wqy-microhei 2>/dev/null)" = "install ok installed" ] \
        || missing+=(fonts-wqy-microhei)
    if [ ${#missing[@]} -gt 0 ]; then
        step "installing test peers: ${missing[*]}"
        # Installing these would start their stock services on standard ports
        # (influxd :8086, postgres :5432, sshd :22, snmpd :161...). A policy-rc.d
        # that denies service starts prevents it; tests start their own instances
        # on ephemeral loopback ports.
        local policy=/usr/sbin/policy-rc.d had_policy=0
        [ -e "$policy" ] && had_policy=1
        if [ "$had_policy" -eq 0 ]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
            as_root chmod +x "$policy"
        fi
        trap '[ "$had_policy" -eq 0 ] && as_root rm -f /usr/sbin/policy-rc.d' EXIT
        apt_install "${missing[@]}"
        [ "$had_policy" -eq 0 ] && as_root rm -f "$policy"
        trap - EXIT
    fi
}

case "$mode" in
    install)
        step "installed. Start it with: .venv/bin/dialwatch run --config $config --data $data_dir"
        ;;
    run)
        step "starting Dialwatch on http://$listen (Ctrl-C stops it)"
        exec .venv/bin/dialwatch run --config "$config" --data "$data_dir" --listen "$listen"
        ;;
    test)
        install_test_peers
        step "ruff"
        .venv/bin/ruff check . || die "ruff found problems (see above)"
        step "pytest"
        exec .venv/bin/python -m pytest
        ;;
    service)
        command -v systemctl >/dev/null || die "systemctl not found: --service needs systemd"
        unit=/etc/systemd/system/dialwatch.service
        step "writing $unit"
        as_root tee "$unit" >/dev/null <<EOF
[Unit]
Description=Dialwatch call-center monitor
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$here/.venv/bin/dialwatch run --config $config --data $data_dir --listen $listen
ExecReload=/bin/kill -HUP \$MAINPID
Restart=always
RestartSec=2
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
        as_root systemctl daemon-reload || die "systemctl daemon-reload failed"
        as_root systemctl enable --now dialwatch.service || die "could not enable dialwatch.service"
        step "dialwatch.service enabled; logs: journalctl -u dialwatch -f, and $data_dir/logs/"
        # First start: the console asks for the setup code before it creates the first admin.
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$data_dir/setup-code" ] && break; sleep 1; done
        if [ -s "$data_dir/setup-code" ]; then
            step "open http://$listen/setup and enter the setup code $(cat "$data_dir/setup-code") to create the first admin"
        fi
        ;;
esac
