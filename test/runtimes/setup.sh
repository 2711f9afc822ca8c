#!/usr/bin/env bash
# Installs and starts the real container runtimes the integration tests push into
# (Incus, LXD, Docker, Podman) on a fresh Debian 12 machine without systemd, as root, and
# builds the offline busybox test image in each; installs the chromium that the drop
# page's tests drive. Idempotent: a second run only starts
# what is not running. The recipe and its pitfalls: ../shared/runtimes.md.
#
#   test/runtimes/setup.sh [all]          install, start, import images, create containers
#   test/runtimes/setup.sh start RUNTIME  start one daemon (incus | lxd | docker) and wait for it
#   test/runtimes/setup.sh stop RUNTIME   stop one daemon, leaving its containers' state
#   test/runtimes/setup.sh kill RUNTIME   SIGKILL one daemon (a crash)
#
# Remote hosts (issue 13), reached through the runtimes' own protocols: incusd also
# listens on HTTPS on a loopback port, and root's incus client has it as the remote
# $INCUS_REMOTE with a trusted client certificate; dockerd also listens on a second
# socket, $DOCKER_SECOND. test/runtimes/runtimes.ts names both for the tests.
set -euo pipefail

WORK=${STEVEDORE_RUNTIMES_DIR:-/var/tmp/stevedore-runtimes}
IMAGE=local/busybox
# A shell and coreutils but no tar: the adapter's fallback is tested on it. Its number
# goes up when its commands change, so that machines holding the older image import this one.
NOTAR=local/notar-2
CONTAINER=stevedore-t1 # the container bench/push and the smoke check use
INCUS_REMOTE=stevedore-remote
INCUS_HTTPS=127.0.0.1:18443
DOCKER_SECOND=/run/stevedore-docker-2.sock
mkdir -p "$WORK"

log() { printf 'setup: %s\n' "$*" >&2; }

wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "timed out waiting for: $*"; return 1; }
    sleep 0.2
  done
}

install_packages() {
  local missing=()
  command -v busybox >/dev/null || missing+=(busybox-static)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v incusd >/dev/null || [[ -x /usr/libexec/incus/incusd ]] || missing+=(incus)
  command -v lxd >/dev/null || missing+=(lxd)
  command -v dockerd >/dev/null || missing+=(docker)
  command -v podman >/dev/null || missing+=(podman)
  # Not a runtime, but what the drop page's tests drive (playwright-core never downloads one).
  command -v chromium >/dev/null || missing+=(chromium)
  # Nor is strace: tests that check a flush happens before a link watch the system calls.
  command -v strace >/dev/null || missing+=(strace)
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  rm -f /var/lib/man-db/auto-update
  if [[ " ${missing[*]} " == *" incus "* ]] && [[ ! -e /etc/apt/sources.list.d/backports.sources ]]; then
    local uris
    uris=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uris" >/etc/apt/sources.list.d/backports.sources
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  local apt=(apt-get install -y -qq --no-install-recommends)
  [[ " ${missing[*]} " == *" busybox-static "* ]] && "${apt[@]}" busybox-static
  [[ " ${missing[*]} " == *" chromium "* ]] && "${apt[@]}" chromium
  [[ " ${missing[*]} " == *" openssl "* ]] && "${apt[@]}" openssl
  [[ " ${missing[*]} " == *" strace "* ]] && "${apt[@]}" strace
  [[ " ${missing[*]} " == *" incus "* ]] && "${apt[@]}" -t bookworm-backports incus-base incus-client
  [[ " ${missing[*]} " == *" lxd "* ]] && "${apt[@]}" lxd && subordinate_ids
  [[ " ${missing[*]} " == *" docker "* ]] && "${apt[@]}" docker.io
  [[ " ${missing[*]} " == *" podman "* ]] && "${apt[@]}" podman runc
  return 0
}

# Root's subordinate ids, one range that Incus and LXD both map their containers into.
# LXD's package appends a second `root:` range (and `_lxd:`) to /etc/subuid and
# /etc/subgid, after which every new Incus container fails (`newuidmap … Invalid
# argument`): those lines go. Each daemon reads the ranges when it starts.
subordinate_ids() {
  local file kept
  for file in /etc/subuid /etc/subgid; do
    [[ -e $file ]] || continue
    kept=$(awk '/^_lxd:/ {next} /^root:/ && seen++ {next} {print}' "$file")
    [[ $kept == "$(cat "$file")" ]] && continue
    log "$file: keeping root's first range only (the lxd package added another)"
    printf '%s\n' "$kept" >"$file"
  done
  grep -q '^root:' /etc/subuid 2>/dev/null || usermod --add-subuids 1000000-1000999999 root
  grep -q '^root:' /etc/subgid 2>/dev/null || usermod --add-subgids 1000000-1000999999 root
}

configure() {
  # Without this podman picks crun, which refuses cgroup v1 hybrid and raising RLIMIT_NOFILE here.
  mkdir -p /etc/containers/containers.conf.d
  cat >/etc/containers/containers.conf.d/50-local.conf <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

rootfs_tar() { # the busybox image as a rootfs tarball, built once
  local tarball=$WORK/rootfs.tar
  [[ -s $tarball ]] && { echo "$tarball"; return; }
  local root=$WORK/rootfs
  rm -rf "$root" && mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var,run}
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list-full); do
    [[ $applet == bin/busybox ]] || ln -sf /bin/busybox "$root/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  echo '::sysinit:/bin/true' >"$root/etc/inittab"
  chmod 1777 "$root/tmp"
  tar --numeric-owner -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  echo "$tarball"
}

# busybox's sh runs its own tar applet even with /bin/tar gone, so the image without tar
# is made of the host's dash and coreutils, with the libraries they load.
notar_tar() {
  local tarball=$WORK/${NOTAR#local/}.tar
  [[ -s $tarball ]] && { echo "$tarball"; return; }
  local root=$WORK/${NOTAR#local/} command src lib
  rm -rf "$root" && mkdir -p "$root"/{bin,sbin,etc,tmp,proc,sys,dev,root,run}
  for command in dash mv mkdir rm rmdir chown chmod tr cat sleep stat ls find wc ln; do
    src=$(command -v "$command")
    cp -L "$src" "$root/bin/$command"
    for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
    done
  done
  ln -s dash "$root/bin/sh"
  printf '#!/bin/sh\nexec sleep 1000000000\n' >"$root/sbin/init" && chmod 755 "$root/sbin/init"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar --numeric-owner -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  echo "$tarball"
}

incus_up() { incus admin waitready --timeout 1 >/dev/null 2>&1; }
start_incus() {
  incus_up && return 0
  log 'starting incusd'
  setsid /usr/libexec/incus/incusd --group root --logfile "$WORK/incusd.log" </dev/null >"$WORK/incusd.out" 2>&1 &
  incus admin waitready --timeout 60 >/dev/null
}
# LXD keeps its state apart from Incus's (/var/lib/lxd) and is driven by its own `lxc`
# CLI, not the lxc-* tools of Debian's `lxc` package. Like incusd, it leaves its socket
# behind when killed; a new daemon takes it over.
lxd_up() { lxd waitready --timeout 1 >/dev/null 2>&1; }
start_lxd() {
  lxd_up && return 0
  log 'starting lxd'
  setsid lxd --group root --logfile "$WORK/lxd.log" </dev/null >"$WORK/lxd.out" 2>&1 &
  lxd waitready --timeout 60 >/dev/null
}
docker_up() { docker info; }
docker_second_up() { docker -H "unix://$DOCKER_SECOND" info; }
start_docker() {
  docker_up >/dev/null 2>&1 && return 0
  log 'starting dockerd'
  setsid dockerd -H unix:///var/run/docker.sock -H "unix://$DOCKER_SECOND" \
    --storage-driver overlay2 --iptables=false --ip6tables=false --bridge=none \
    --exec-opt native.cgroupdriver=cgroupfs </dev/null >"$WORK/dockerd.log" 2>&1 &
  wait_for 60 docker_up && wait_for 10 docker_second_up
}
# A dockerd started before the second socket was added listens on one: it is restarted once.
docker_second() {
  docker_second_up >/dev/null 2>&1 && return 0
  log "dockerd does not listen on $DOCKER_SECOND: restarting it with both sockets"
  stop_daemon dockerd dockerd && start_docker
}

# incusd's HTTPS API on a loopback port (kept in its database: a restarted incusd listens
# again), root's client certificate trusted, and the remote added over it. The client
# trusts the server's certificate as it is when added (the server keeps it in /var/lib/incus).
incus_remote() {
  [[ $(incus config get core.https_address) == "$INCUS_HTTPS" ]] || incus config set core.https_address "$INCUS_HTTPS"
  local cert=$HOME/.config/incus/client.crt fingerprint
  [[ -s $cert ]] || incus remote generate-certificate 2>/dev/null
  fingerprint=$(openssl x509 -in "$cert" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
  incus query /1.0/certificates?recursion=1 | grep -q "\"fingerprint\": \"$fingerprint\"" \
    || incus config trust add-certificate "$cert" --name stevedore-tests
  incus remote list -f csv | grep -q "^$INCUS_REMOTE," \
    || incus remote add "$INCUS_REMOTE" "https://$INCUS_HTTPS" --accept-certificate --auth-type tls >/dev/null
  incus info "$INCUS_REMOTE:" >/dev/null
}

stop_daemon() { # NAME PROCESS [SIGNAL]
  log "stopping $1 (SIG${3:-TERM})"
  pkill "-${3:-TERM}" -x "$2" || true
  wait_for 30 bash -c "! pgrep -x $2" && return
  # On a busy machine a daemon can take longer than that to shut down (LXD 5.0 beside
  # two CPU hogs, once): the callers want it gone, so it is killed.
  log "killing $1"
  pkill -KILL -x "$2" || true
  wait_for 30 bash -c "! pgrep -x $2"
}

meta_tar() { # the image metadata Incus and LXD import beside a rootfs tarball
  local meta=$WORK/meta
  [[ -s $WORK/meta.tar ]] && { echo "$WORK/meta.tar"; return; }
  mkdir -p "$meta"
  printf 'architecture: x86_64\ncreation_date: %s\nproperties:\n  description: busybox\n  os: busybox\n' "$(date +%s)" >"$meta/metadata.yaml"
  tar -C "$meta" -cf "$WORK/meta.tar.part" metadata.yaml && mv "$WORK/meta.tar.part" "$WORK/meta.tar"
  echo "$WORK/meta.tar"
}

image_incuslike() { # CLI INIT-COMMAND... (incus incus admin init | lxc lxd init)
  local cli=$1; shift
  if [[ -z $("$cli" storage list -f csv) ]]; then
    "$@" --preseed <<'EOF'
storage_pools:
  - name: default
    driver: dir
profiles:
  - name: default
    devices:
      root: { path: /, pool: default, type: disk }
EOF
  fi
  "$cli" image info "$IMAGE" >/dev/null 2>&1 || "$cli" image import "$(meta_tar)" "$(rootfs_tar)" --alias "$IMAGE" >/dev/null
  "$cli" image info "$NOTAR" >/dev/null 2>&1 || "$cli" image import "$(meta_tar)" "$(notar_tar)" --alias "$NOTAR" >/dev/null
}
image_oci() { # docker | podman
  "$1" image inspect "$IMAGE" >/dev/null 2>&1 || "$1" import "$(rootfs_tar)" "$IMAGE" >/dev/null
  "$1" image inspect "$NOTAR" >/dev/null 2>&1 || "$1" import "$(notar_tar)" "$NOTAR" >/dev/null
}

container_incuslike() { # incus | lxc
  "$1" info "$CONTAINER" >/dev/null 2>&1 || "$1" launch -q "$IMAGE" "$CONTAINER" 2>/dev/null
  "$1" start "$CONTAINER" 2>/dev/null || true
}
# When a machine's processes are all killed (a CI job starting where a session ended),
# podman's state still says "Up" for a container whose processes are gone, and neither
# exec nor start works on it again: such a container is removed and made anew. Its
# removal can fail while podman's own clean-up of the failed start still holds it (seen
# once: the name then stayed taken), so it is tried until the name is free.
container_oci() { # docker | podman
  "$1" start "$CONTAINER" >/dev/null 2>&1 && "$1" exec "$CONTAINER" true 2>/dev/null && return 0
  local tries=0
  while "$1" container inspect "$CONTAINER" >/dev/null 2>&1 && ((tries++ < 10)); do
    "$1" rm -f "$CONTAINER" >/dev/null 2>&1 || sleep 1
  done
  "$1" run -d --name "$CONTAINER" --network none "$IMAGE" sleep infinity >/dev/null
}

all() {
  subordinate_ids # before LXD's package looks for a free range
  install_packages
  configure
  start_incus && image_incuslike incus incus admin init && container_incuslike incus && incus_remote
  start_lxd && image_incuslike lxc lxd init && container_incuslike lxc
  start_docker && docker_second && image_oci docker && container_oci docker
  image_oci podman && container_oci podman
  incus exec "$CONTAINER" -- true
  lxc exec "$CONTAINER" -- true
  docker exec "$CONTAINER" true
  podman exec "$CONTAINER" true
  incus list -f csv -c n "$INCUS_REMOTE:" >/dev/null
  docker -H "unix://$DOCKER_SECOND" exec "$CONTAINER" true
  log "ready: incus $(incus version | awk '/Server/ {print $3}'), lxd $(lxd version), docker $(docker version -f '{{.Server.Version}}'), podman $(podman version -f '{{.Version}}')"
}

case ${1:-all} in
  all) all ;;
  start) case ${2:?runtime} in incus) start_incus ;; lxd) start_lxd ;; docker) start_docker ;; *) log "no daemon for $2"; exit 2 ;; esac ;;
  stop) case ${2:?runtime} in incus) stop_daemon incusd incusd ;; lxd) stop_daemon lxd lxd ;; docker) stop_daemon dockerd dockerd ;; *) log "no daemon for $2"; exit 2 ;; esac ;;
  kill) case ${2:?runtime} in incus) stop_daemon incusd incusd KILL ;; lxd) stop_daemon lxd lxd KILL ;; docker) stop_daemon dockerd dockerd KILL ;; *) log "no daemon for $2"; exit 2 ;; esac ;;
  *) log "unknown command: $1"; exit 2 ;;
esac
