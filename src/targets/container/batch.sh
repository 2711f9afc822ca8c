# stevedore's batch program, run inside a container as `sh -c "$(this file)" stevedore ARGS`.
# Data (paths, modes) arrive only as arguments, never spliced into code.
#
# ARGS: MODE TAG FIX, then three counted lists:
#   ND, then ND x (DIR ROOT DIRMODE)              directories the puts need; missing parts get DIRMODE
#   NR, then NR x (PATH ROOT)                     paths to remove, recursively
#   NP, then NP x (DIRINDEX NAME UID:GID FMODE)   puts, grouped by directory
# MODE all: everything, the tar stream of the puts on stdin. copy: directories, removals and
# staging directories, then the line "c - copy" and a wait for one line on stdin while the
# runtime's own copy puts the files in the staging directories: "commit [I...]" renames
# them (FIX=1 then sets owner and mode here; puts I... were not copied), anything else
# (end of input) removes them. abort: removes the staging directories of a batch that
# could not end (the agent killed, the container down). Each put is unpacked as
# DIR/.stevedore-TAG/NAME and renamed to DIR/NAME with one mv per directory: rename(2),
# so a reader sees the old file or the new one, never a partial one.
# ROOT is the configured directory a path lies under: a path whose existing part resolves
# (symlinks followed) outside ROOT's own resolution, or goes through a dangling symlink,
# is refused as unsafe, and nothing is made, unpacked, renamed or removed through it.
# A staging directory is checked again (a real directory, where its DIR resolves) right
# before tar runs and before its files are chowned and renamed, which happens from inside
# it: one swapped for a symlink meanwhile is refused. What tar (or the runtime's own
# copy) writes while it runs cannot be checked from sh; that window stays.
# Output: "r I ok" | "r I KIND MSG" per removal; "d I unsafe MSG" per refused directory,
# "d I fail MSG" per one that could not be made; "p I KIND MSG" per put that failed (KIND: missing,
# isdir, unsafe, fail); "g FIRST END" when every other put in FIRST..END-1 landed;
# "t - MSG" when tar failed; "e - end" last (all, copy), so that a report cut short is known.
# A put that fails leaves no directory made for it: at the end (all, copy), each
# directory none of whose puts reached its rename loses what the batch made of it, each
# part while it is empty.
#
# One pass over the arguments (a `for` loop: `shift` and long argument lists cost O(n^2)
# in sh), and variables only for directories and the current directory's puts: sh keeps
# variables in a small hash table, so thousands of them make every lookup slow. cd -P and
# $PWD resolve paths without a subshell; every path given is absolute, so moving is harmless.
mode=$1 tag=$2 fix=$3; shift 3
# A message can hold a path, and a name may hold a newline: the message stays on its
# line, or the rest of the name would be read as a line of the report (another put "ok").
# The subshell only when there is a newline.
nl='
'
say() {
  m=$3
  case $m in *"$nl"*) m=$(oneline "$m") ;; esac
  printf '%s %s %s\n' "$1" "$2" "$m"
}
oneline() { printf '%s' "$1" | tr '\n' ' '; }
mkdirs() {
  [ -d "$1" ] && return 0
  p=${1%/*}
  [ -z "$p" ] || mkdirs "$p" "$2" || return 1
  mkdir -m "$2" -- "$1" 2>/dev/null || [ -d "$1" ] || mkdir -m "$2" -- "$1"
}
# True when path $1 cannot lead outside root $2: no part of it is a dangling symlink, and
# the deepest part that exists resolves to the root's resolution or below it. When that
# part lies above the root, nothing below the root exists yet, and what mkdir makes
# there is no symlink.
inside() {
  a=$1 r=${2%/}
  while [ -n "$a" ] && [ ! -d "$a" ]; do [ -L "$a" ] && return 1; a=${a%/*}; done
  case $r/ in "$a"/*) [ "$a" != "$r" ] && return 0 ;; esac
  cd -P -- "${a:-/}" 2>/dev/null || return 1
  a=$PWD
  cd -P -- "${r:-/}" 2>/dev/null || return 1
  case ${a%/}/ in "${PWD%/}"/*) return 0 ;; esac
  return 1
}
# True when directory $1 (root $2) is inside its root and its staging directory is a real
# directory where $1 resolves; the shell is then in it, $sp its path, $dp the directory's.
ours() {
  inside "${1:-/}" "$2" && cd -P -- "${1:-/}" 2>/dev/null || return 1
  dp=${PWD%/} sp=${PWD%/}/.stevedore-$tag
  [ ! -L "$sp" ] && cd -P -- "$sp" 2>/dev/null && [ "$PWD" = "$sp" ]
}
# The topmost part of $1 that does not exist yet, in $top (empty when all of it does).
missing() {
  top= a=$1
  while [ -n "$a" ] && [ ! -d "$a" ]; do top=$a; a=${a%/*}; done
}
unsafe= nd=0
refuse() { # INDEX MESSAGE: nothing of the batch is unpacked (tar would follow the way)
  unsafe=1; eval "derr_$1=\$2"; say d "$1" "unsafe $2"
}
# Directory number $4 is $1 (root $2, mode $3): made if missing, with a staging directory in it.
directory() {
  eval "dir_$4=\$1 droot_$4=\$2 top_$4="; nd=$(($4+1))
  if [ "$mode" = abort ]; then inside "${1:-/}" "$2" && rm -rf -- "$1/.stevedore-$tag"
  elif ! inside "${1:-/}" "$2"; then refuse $4 "${1:-/} leads outside $2 through a symlink"
  else
    missing "$1"; eval "top_$4=\$top"
    if ! err=$(mkdirs "${1:-/}" "$3" 2>&1 && mkdir -m 700 -- "$1/.stevedore-$tag" 2>&1); then
      unsafe=1; eval "derr_$4=\$(oneline \"\$err\")"; eval "say d $4 \"fail \$derr_$4\""
    fi
  fi
}
# Directory $1 got none of its files: what the batch made of it goes, from the directory
# up to the topmost part made, each part while it is empty and still inside its root.
prune() {
  eval "d=\$dir_$1 t=\${top_$1-} r=\$droot_$1"
  while [ -n "$t" ] && [ -n "$d" ]; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then inside "$d" "$r" && rmdir -- "$d" 2>/dev/null || return 0; fi
    [ "$d" = "$t" ] && return 0
    d=${d%/*}
  done
}
# Deepest first: a directory sorts after its parent.
prune_all() {
  i=$nd
  while [ $i -gt 0 ]; do
    i=$((i-1))
    eval "x=\${ok_$i-}"
    [ -n "$x" ] || prune $i
  done
}
remove() { # PATH ROOT INDEX
  if ! inside "${1%/*}" "$2"; then say r $3 "unsafe ${1%/*} leads outside $2 through a symlink"; return 0; fi
  err=$(rm -rf -- "$1" 2>&1)
  if [ -e "$1" ] || [ -L "$1" ]; then say r $3 "fail $(oneline "$err")"; else say r $3 ok; fi
}
# Right before tar: every staging directory still ours.
recheck() {
  i=0
  while [ $i -lt $nd ]; do
    eval "x=\${derr_$i-} d=\$dir_$i r=\$droot_$i"
    [ -n "$x" ] || ours "$d" "$r" || refuse $i "${d:-/}/.stevedore-$tag was replaced"
    i=$((i+1))
  done
}
# A tar that failed may have left its last file half-written: then nothing is renamed.
terr='not unpacked' tfail=
# tar follows a symlinked directory on its way: with one refused, nothing is unpacked,
# and the other files go again one by one (their batch has no refused directory). The
# input is read to its end either way: exited before it ended, this program's report
# was sometimes lost whole by podman exec (4.3; exit 0, nothing on stdout, 4 runs in 28
# beside two CPU hogs when tar stopped at a full disk).
untar() {
  [ "$mode" = all ] && [ "$1" -gt 0 ] || return 0
  recheck
  if [ -n "$unsafe" ]; then cat >/dev/null; terr='not unpacked: another directory of the batch was refused' tfail=1; say t - "$terr"
  elif ! err=$(tar -xf - -C / 2>&1); then terr=$(oneline "$err") tfail=1; cat >/dev/null; say t - "$terr"; fi
}
# Put number $j: NAME $1, owner $2, mode $3, in the current group's staging directory
# (the shell is in it).
put() {
  s=./$1
  if [ -n "$e" ]; then say p $j "unsafe $e"
  elif case " $skip " in *" $j "*) true ;; *) false ;; esac; then say p $j "fail not copied"; rm -f -- "$s"
  elif [ -n "$tfail" ] || [ ! -f "$s" ]; then say p $j "missing $terr"
  elif [ -d "$dp/$1" ] && [ ! -L "$dp/$1" ]; then say p $j "isdir $dst/$1 is a directory"; rm -f -- "$s"
  elif [ "$fix" = 1 ] && ! ferr=$(chown -h "$2" "$s" 2>&1 && chmod "$3" "$s" 2>&1); then
    say p $j "fail $(oneline "$ferr")"; rm -f -- "$s"
  else eval "q_$j=\$1 ok_$cur=1"
  fi
}
# The runtime's copy ran (copy mode): what it could not copy, or all of it when no commit came.
skip=
copied() {
  say c - copy
  read -r go skip || go=
  [ "$go" = commit ] || { terr='not copied' tfail=1 skip=; }
}
# A glob that matched nothing stays itself: nothing to move then.
move() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  err=$(mv -f -- "$@" "$dp/" 2>&1) || merr="$merr$err "
}
# Puts first..j-1 share directory $cur: rename every file left in its staging directory
# with one mv (globbed), then report; only when mv failed is each file looked at.
group_end() {
  [ -n "$cur" ] || return 0
  if [ -z "$e" ] && [ -z "$tfail" ]; then
    merr=
    move ./*
    move ./.[!.]*
    move ./..?*
    g=$first
    while [ -n "$merr" ] && [ $g -lt $j ]; do
      eval "q=\${q_$g-}"
      if [ -n "$q" ] && [ -e "./$q" ]; then say p $g "fail $(oneline "$merr")"; rm -f -- "./$q"; fi
      g=$((g+1))
    done
    say g $first $j
  fi
  g=$first
  while [ $g -lt $j ]; do unset "q_$g"; g=$((g+1)); done
  [ -z "$e" ] || return 0
  cd / && if [ -n "$tfail" ]; then rm -rf -- "$sp"; else rmdir -- "$sp" 2>/dev/null; fi
}
group_start() {
  cur=$1 first=$j
  eval "dst=\$dir_$1 e=\${derr_$1-} r=\$droot_$1"
  [ -n "$e" ] || ours "$dst" "$r" || e="${dst:-/}/.stevedore-$tag is not a directory of ours (replaced, or not made)"
}
state=nd k=0 j=0 cur=
for a; do
  case $state in
    nd) left=$a state=dir; [ "$left" -gt 0 ] || state=nr ;;
    dir) d=${a%/} state=droot ;;
    droot) dr=$a state=dmode ;;
    dmode) directory "$d" "$dr" "$a" $k; k=$((k+1)) left=$((left-1)); if [ $left -gt 0 ]; then state=dir; else state=nr; fi ;;
    nr)
      [ "$mode" = abort ] && exit 0
      left=$a k=0 state=rm; [ "$left" -gt 0 ] || state=np ;;
    rm) rp=$a state=rroot ;;
    rroot) remove "$rp" "$a" $k; k=$((k+1)) left=$((left-1)); if [ $left -gt 0 ]; then state=rm; else state=np; fi ;;
    np)
      [ "$mode" = copy ] && copied
      untar "$a"; state=pd ;;
    pd) [ "$a" = "$cur" ] || { group_end; group_start "$a"; }; state=pn ;;
    pn) n=$a state=po ;;
    po) o=$a state=pm ;;
    pm) put "$n" "$o" "$a"; j=$((j+1)) state=pd ;;
  esac
done
group_end
prune_all
say e - end
exit 0
