# stevedore's batch program, run inside a container as `sh -c "$(this file)" stevedore ARGS`.
# Data (paths, modes) arrive only as arguments, never spliced into code.
#
# ARGS: MODE TAG FIX, then three counted lists:
#   ND, then ND x (DIR DIRMODE)                   directories the puts need; missing parts get DIRMODE
#   NR, then NR x PATH                            paths to remove, recursively
#   NP, then NP x (DIRINDEX NAME UID:GID FMODE)   puts, grouped by directory
# MODE all: everything, the tar stream of the puts on stdin. prepare: directories, removals
# and staging directories only. commit: the renames only (the files were copied in by other
# means; FIX=1 then sets owner and mode here). abort: removes the staging directories of
# a prepare whose copy failed. Each put is unpacked as DIR/.stevedore-TAG/NAME
# and renamed to DIR/NAME with one mv per directory: rename(2), so a reader sees the old file
# or the new one, never a partial one.
# Output, one line per item: "r I ok" | "r I fail MSG" and "p I ok" | "p I KIND MSG"
# (KIND: missing, isdir, unsafe, fail), plus "t - MSG" when tar failed.
mode=$1 tag=$2 fix=$3; shift 3
say() { printf '%s %s %s\n' "$1" "$2" "$3"; }
oneline() { printf '%s' "$1" | tr '\n' ' '; }
mkdirs() {
  [ -d "$1" ] && return 0
  p=${1%/*}
  [ -z "$p" ] || mkdirs "$p" "$2" || return 1
  mkdir -m "$2" -- "$1" 2>/dev/null || [ -d "$1" ] || mkdir -m "$2" -- "$1"
}
nd=$1; shift; i=0
while [ $i -lt "$nd" ]; do
  d=${1%/}
  eval "dir_$i=\$d"
  if [ "$mode" = abort ]; then rm -rf -- "$d/.stevedore-$tag"
  elif [ "$mode" != commit ]; then
    if err=$(mkdirs "$1" "$2" 2>&1); then
      mkdir -m 700 -- "$d/.stevedore-$tag" 2>/dev/null
    else
      eval "derr_$i=\$(oneline \"\$err\")"
    fi
  fi
  shift 2; i=$((i+1))
done
[ "$mode" = abort ] && exit 0
nr=$1; shift; i=0
while [ $i -lt "$nr" ]; do
  if [ "$mode" != commit ]; then
    err=$(rm -rf -- "$1" 2>&1)
    if [ -e "$1" ] || [ -L "$1" ]; then say r $i "fail $(oneline "$err")"; else say r $i ok; fi
  fi
  shift; i=$((i+1))
done
np=$1; shift
[ "$mode" = prepare ] && exit 0
# A tar that failed may have left its last file half-written: then nothing is renamed.
terr='not unpacked' tfail=
if [ "$mode" = all ] && [ "$np" -gt 0 ]; then
  if ! err=$(tar -xf - -C / 2>&1); then terr=$(oneline "$err") tfail=1; say t - "$terr"; fi
fi
i=0
while [ $i -lt "$np" ]; do eval "pd_$i=\$1 pn_$i=\$2 po_$i=\$3 pm_$i=\$4"; shift 4; i=$((i+1)); done
# Lands puts first..i-1 (one directory): the checks, then every file left in the staging
# directory renamed by one mv (globbed: building an argument list costs O(n^2) in sh),
# then a report per put.
land() {
  j=$first
  while [ $j -lt $i ]; do
    eval "n=\$pn_$j o=\$po_$j m=\$pm_$j"
    s=$stg/$n q=
    if [ ! -f "$s" ]; then say p $j "missing $terr"
    elif [ -d "$dst/$n" ] && [ ! -L "$dst/$n" ]; then say p $j "isdir $dst/$n is a directory"; rm -f -- "$s"
    elif [ "$fix" = 1 ] && ! ferr=$(chown "$o" "$s" 2>&1 && chmod "$m" "$s" 2>&1); then
      say p $j "fail $(oneline "$ferr")"; rm -f -- "$s"
    else q=1
    fi
    eval "q_$j=\$q"
    j=$((j+1))
  done
  merr=
  move "$stg"/*
  move "$stg"/.[!.]*
  move "$stg"/..?*
  j=$first
  while [ $j -lt $i ]; do
    eval "n=\$pn_$j q=\$q_$j"
    if [ -z "$q" ]; then :
    elif [ -e "$stg/$n" ]; then say p $j "fail $(oneline "$merr")"; rm -f -- "$stg/$n"
    else say p $j ok
    fi
    j=$((j+1))
  done
  rmdir -- "$stg" 2>/dev/null
}
# A glob that matched nothing stays itself: nothing to move then.
move() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  err=$(mv -f -- "$@" "$dst/" 2>&1) || merr="$merr$err "
}
i=0; first=0; cur=
while [ $i -le "$np" ]; do
  d=
  [ $i -lt "$np" ] && eval "d=\$pd_$i"
  if [ $i -eq "$np" ] || [ "$d" != "$cur" ]; then
    if [ -n "$cur" ]; then
      eval "dst=\$dir_$cur e=\${derr_$cur-}"
      stg=$dst/.stevedore-$tag
      if [ -n "$e" ]; then
        j=$first; while [ $j -lt $i ]; do say p $j "unsafe $e"; j=$((j+1)); done
      elif [ -n "$tfail" ]; then
        j=$first; while [ $j -lt $i ]; do say p $j "missing $terr"; j=$((j+1)); done
        rm -rf -- "$stg"
      else land; fi
    fi
    first=$i; cur=$d
  fi
  i=$((i+1))
done
exit 0
