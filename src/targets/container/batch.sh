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
# a prepare whose copy failed. Each put is unpacked as DIR/.stevedore-TAG/NAME and renamed
# to DIR/NAME with one mv per directory: rename(2), so a reader sees the old file or the
# new one, never a partial one.
# Output: "r I ok" | "r I fail MSG" per removal; "p I KIND MSG" per put that failed (KIND:
# missing, isdir, unsafe, fail); "g FIRST END" when every other put in FIRST..END-1 landed;
# "t - MSG" when tar failed.
#
# One pass over the arguments (a `for` loop: `shift` and long argument lists cost O(n^2)
# in sh), and variables only for directories and the current directory's puts: sh keeps
# variables in a small hash table, so thousands of them make every lookup slow.
mode=$1 tag=$2 fix=$3; shift 3
say() { printf '%s %s %s\n' "$1" "$2" "$3"; }
oneline() { printf '%s' "$1" | tr '\n' ' '; }
mkdirs() {
  [ -d "$1" ] && return 0
  p=${1%/*}
  [ -z "$p" ] || mkdirs "$p" "$2" || return 1
  mkdir -m "$2" -- "$1" 2>/dev/null || [ -d "$1" ] || mkdir -m "$2" -- "$1"
}
# Directory number $3 is $1 (mode $2): made if missing, with a staging directory in it.
directory() {
  eval "dir_$3=\$1"
  if [ "$mode" = abort ]; then rm -rf -- "$1/.stevedore-$tag"
  elif [ "$mode" != commit ]; then
    if err=$(mkdirs "${1:-/}" "$2" 2>&1); then mkdir -m 700 -- "$1/.stevedore-$tag" 2>/dev/null
    else eval "derr_$3=\$(oneline \"\$err\")"
    fi
  fi
}
remove() {
  [ "$mode" = commit ] && return 0
  err=$(rm -rf -- "$1" 2>&1)
  if [ -e "$1" ] || [ -L "$1" ]; then say r $2 "fail $(oneline "$err")"; else say r $2 ok; fi
}
# A tar that failed may have left its last file half-written: then nothing is renamed.
terr='not unpacked' tfail=
untar() {
  [ "$mode" = all ] && [ "$1" -gt 0 ] || return 0
  if ! err=$(tar -xf - -C / 2>&1); then terr=$(oneline "$err") tfail=1; say t - "$terr"; fi
}
# Put number $j: NAME $1, owner $2, mode $3, in the directory of the current group.
put() {
  s=$stg/$1
  if [ -n "$e" ]; then say p $j "unsafe $e"
  elif [ -n "$tfail" ] || [ ! -f "$s" ]; then say p $j "missing $terr"
  elif [ -d "$dst/$1" ] && [ ! -L "$dst/$1" ]; then say p $j "isdir $dst/$1 is a directory"; rm -f -- "$s"
  elif [ "$fix" = 1 ] && ! ferr=$(chown "$2" "$s" 2>&1 && chmod "$3" "$s" 2>&1); then
    say p $j "fail $(oneline "$ferr")"; rm -f -- "$s"
  else eval "q_$j=\$1"
  fi
}
# A glob that matched nothing stays itself: nothing to move then.
move() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  err=$(mv -f -- "$@" "$dst/" 2>&1) || merr="$merr$err "
}
# Puts first..j-1 share directory $cur: rename every file left in its staging directory
# with one mv (globbed), then report; only when mv failed is each file looked at.
group_end() {
  [ -n "$cur" ] || return 0
  if [ -z "$e" ] && [ -z "$tfail" ]; then
    merr=
    move "$stg"/*
    move "$stg"/.[!.]*
    move "$stg"/..?*
    g=$first
    while [ -n "$merr" ] && [ $g -lt $j ]; do
      eval "q=\${q_$g-}"
      if [ -n "$q" ] && [ -e "$stg/$q" ]; then say p $g "fail $(oneline "$merr")"; rm -f -- "$stg/$q"; fi
      g=$((g+1))
    done
    say g $first $j
  fi
  g=$first
  while [ $g -lt $j ]; do unset "q_$g"; g=$((g+1)); done
  if [ -n "$tfail" ]; then rm -rf -- "$stg"; else rmdir -- "$stg" 2>/dev/null; fi
}
group_start() {
  cur=$1 first=$j
  eval "dst=\$dir_$1 e=\${derr_$1-}"
  stg=$dst/.stevedore-$tag
}
state=nd k=0 j=0 cur=
for a; do
  case $state in
    nd) left=$a state=dir; [ "$left" -gt 0 ] || state=nr ;;
    dir) d=${a%/} state=dmode ;;
    dmode) directory "$d" "$a" $k; k=$((k+1)) left=$((left-1)); if [ $left -gt 0 ]; then state=dir; else state=nr; fi ;;
    nr)
      [ "$mode" = abort ] && exit 0
      left=$a k=0 state=rm; [ "$left" -gt 0 ] || state=np ;;
    rm) remove "$a" $k; k=$((k+1)) left=$((left-1)); [ $left -gt 0 ] || state=np ;;
    np)
      [ "$mode" = prepare ] && exit 0
      untar "$a"; state=pd ;;
    pd) [ "$a" = "$cur" ] || { group_end; group_start "$a"; }; state=pn ;;
    pn) n=$a state=po ;;
    po) o=$a state=pm ;;
    pm) put "$n" "$o" "$a"; j=$((j+1)) state=pd ;;
  esac
done
group_end
exit 0
