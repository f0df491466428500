#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing (CI runs
# as root on Debian). Without root it says what to install and the tests that
# need the package say what they miss.
set -euo pipefail
need=()
command -v crontab >/dev/null 2>&1 || need+=(cron)
# "Several hosts, one home": a loopback sshd and sshfs mounts of one directory.
command -v sshfs >/dev/null 2>&1 || need+=(sshfs)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v faketime >/dev/null 2>&1 || need+=(faketime)  # hosts with skewed clocks
# A single-node SLURM cluster (tests/slurmlab.py), and for its accounting tests
# slurmdbd with a MariaDB. Recommends would add 31 plugin packages nothing uses.
[ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
[ -x /usr/sbin/slurmd ] || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
[ -x /usr/sbin/munged ] || need+=(munge)
[ -x /usr/sbin/slurmdbd ] || need+=(slurmdbd)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "note: the tests want these Debian packages: ${need[*]} (sudo apt install ${need[*]})" >&2
fi
