# shellcheck shell=sh
# Every path of the root file system with its type, mode and owner, sorted; what no role run may
# leave behind is the difference of two listings. Left out: kernel and runtime file systems, logs,
# caches and temporary directories, Ansible's own working directory and the mounted Go toolchain.
find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
  -o -path /var/log -o -path /var/cache -o -path /root/.ansible -o -path /usr/local/go \) -prune \
  -o -printf '%p %M %u\n' | sort
