#!/bin/sh
# Every file under the root with its mode and checksum: what vrrp_instance may touch.
root=$1
find "$root" -type f ! -name '*.sock' -print | sort | while read -r path; do
    echo "$(stat -c '%a' "$path") $(sha256sum "$path")"
done
