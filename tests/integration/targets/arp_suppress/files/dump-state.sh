#!/bin/sh
# Everything arp_suppress may touch: the ARP sysctls, the loopback's addresses, the files.
root=$1
for f in /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/all/arp_announce \
         /proc/sys/net/ipv4/conf/lo/arp_ignore /proc/sys/net/ipv4/conf/lo/arp_announce; do
    echo "$f=$(cat "$f")"
done
ip -o addr show dev lo | sed 's/ valid_lft.*//'
find "$root" \( -type f -o -type l \) -print | sort | while read -r path; do
    if [ -L "$path" ]; then echo "$path -> $(readlink "$path")"
    else echo "== $path"; cat "$path"
    fi
done
