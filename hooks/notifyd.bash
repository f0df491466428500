# notifyd login hook: makes sure your job watcher runs, without slowing the
# login or printing anything. Add one line to ~/.bashrc:
#
#     source /path/to/notifyd/hooks/notifyd.bash
#
# If notifyd is not on PATH when ~/.bashrc runs (a venv that is not
# activated), name it first; its directory is then put on PATH for pingch:
#
#     NOTIFYD_BIN=$HOME/.notifyd-venv/bin/notifyd
#     source /path/to/notifyd/hooks/notifyd.bash

# Interactive shells only: scp, rsync and `ssh host cmd` read ~/.bashrc too,
# and break when it prints or lingers.
case $- in
  *i*) ;;
  *) return 0 2>/dev/null || exit 0 ;;
esac
# Once per shell, however often this file is sourced.
if [ -z "${__notifyd_hooked-}" ]; then
  __notifyd_hooked=1
  if [ -n "${NOTIFYD_BIN-}" ]; then
    case ":$PATH:" in
      *":${NOTIFYD_BIN%/*}:"*) ;;
      *) PATH="${NOTIFYD_BIN%/*}:$PATH" ;;
    esac
  fi
  __notifyd_bin=${NOTIFYD_BIN:-$(command -v notifyd)}
  if [ -n "$__notifyd_bin" ]; then
    # A subshell that backgrounds ensure and exits: the login never waits for
    # Python, and job control has no job to announce ("[1] 1234").
    ( "$__notifyd_bin" ensure >/dev/null 2>&1 & )
  fi
  unset __notifyd_bin
fi
