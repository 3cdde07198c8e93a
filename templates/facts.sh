#!/bin/sh
# facts.sh: prints what nixplan needs to know about this machine as one JSON
# document (nixplan machine description, version 1) on stdout.
#
# Run it as root in the provider's rescue system (or in the NixOS installer)
# before anything else:
#     sh facts.sh > facts.json
# then, on your laptop, `nixplan init --facts facts.json` writes a spec from it
# and `nixplan check --facts facts.json host.toml` compares a spec with it.
#
# It is strictly read-only: it reads /sys, /proc, /etc/os-release and root's
# authorized_keys, and runs only commands that read (uname, ip, blkid -p,
# lsblk, readlink, od, awk, tr, base64, sha256sum, date). It writes nothing but stdout;
# blkid runs with -p, which bypasses (and so never updates) its cache file.
# Where a tool or a file is missing it prints null or an empty list instead of
# failing. Plain POSIX sh: it runs under dash, busybox sh and bash.

set -u
export LC_ALL=C

FACTS_VERSION=1

# The commands whose presence nixplan checks (`tools` in the output).
TOOLS="tar gzip xz cpio curl wget sha256sum kexec ip lsblk blkid parted sgdisk sfdisk wipefs mdadm lvm zpool zfs mkfs.ext4 mkfs.vfat efibootmgr ssh-keygen nixos-install"

# The files the kexec installer copies root's login keys from. Tests point
# FACTS_KEY_FILES elsewhere; the names must not hold spaces.
KEY_FILES=${FACTS_KEY_FILES:-/root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /etc/ssh/authorized_keys.d/root}

# The resolver configuration; tests point FACTS_RESOLV_CONF elsewhere.
RESOLV_CONF=${FACTS_RESOLV_CONF:-/etc/resolv.conf}

have() { command -v "$1" >/dev/null 2>&1; }

# readf prints the first line of a file, or nothing when it cannot be read.
readf() {
  _readf_line=
  [ -r "$1" ] || return 0
  IFS= read -r _readf_line 2>/dev/null <"$1" || [ -n "$_readf_line" ] || return 0
  printf '%s' "$_readf_line"
}

# js prints its argument as a JSON string; jsn prints null for an empty one.
# Plain text goes out as it is; anything with a quote, a backslash or a control
# character goes through awk.
js() {
  case $1 in
  *[\"\\]* | *[[:cntrl:]]*)
    printf '%s' "$1" | awk '
      BEGIN {
        for (i = 1; i < 32; i++) ctl[sprintf("%c", i)] = sprintf("\\u%04x", i)
        ctl["\t"] = "\\t"; ctl["\r"] = "\\r"; ctl["\b"] = "\\b"; ctl["\f"] = "\\f"
        ctl["\""] = "\\\""; ctl["\\"] = "\\\\"; ctl[sprintf("%c", 127)] = "\\u007f"
        printf "\""
      }
      {
        if (NR > 1) printf "\\n"
        n = length($0)
        for (i = 1; i <= n; i++) {
          c = substr($0, i, 1)
          if (c in ctl) printf "%s", ctl[c]; else printf "%s", c
        }
      }
      END { printf "\"" }'
    ;;
  *) printf '"%s"' "$1" ;;
  esac
}
jsn() { if [ -n "$1" ]; then js "$1"; else printf null; fi; }

# jnum prints a whole number, or null.
jnum() {
  case $1 in
  '' | *[!0-9]*) printf null ;;
  *) printf '%s' "$1" ;;
  esac
}

# jbool prints true for 1, false for 0, null otherwise.
jbool() {
  case $1 in
  1) printf true ;;
  0) printf false ;;
  *) printf null ;;
  esac
}

# jlist prints its arguments as a JSON list of strings.
jlist() {
  printf '['
  _jl_sep=
  for _jl_item in "$@"; do
    printf '%s' "$_jl_sep"
    js "$_jl_item"
    _jl_sep=', '
  done
  printf ']'
}

# The mounts and swaps of the machine, as "major:minor mountpoint" lines, so
# that a device is found mounted whatever name it was mounted by.
MOUNTS=
if [ -r /proc/self/mountinfo ]; then
  # mountinfo writes a space in a path as \040 (and tab, newline, backslash alike).
  MOUNTS=$(awk '{
    t = $5
    gsub(/\\040/, " ", t); gsub(/\\011/, "\t", t); gsub(/\\012/, " ", t); gsub(/\\134/, "\\", t)
    print $3, t
  }' /proc/self/mountinfo 2>/dev/null)
fi
SWAPS=
if [ -r /proc/swaps ]; then
  SWAPS=$(awk 'NR > 1 { print $1 }' /proc/swaps 2>/dev/null)
fi

# mountpoints prints a device's mountpoints as a JSON list; $1 is the
# device's sysfs folder, $2 its /dev path. A swap shows as "[SWAP]".
mountpoints() {
  _mp_dev=$(readf "$1/dev")
  _mp_path=$2
  set --
  if [ -n "$_mp_dev" ] && [ -n "$MOUNTS" ]; then
    # The mountpoints are read line by line; the here-document keeps the loop
    # in this shell so that "set --" reaches the list.
    while read -r _mp_majmin _mp_target; do
      [ "$_mp_majmin" = "$_mp_dev" ] && set -- "$@" "$_mp_target"
    done <<EOF
$MOUNTS
EOF
  fi
  for _mp_swap in $SWAPS; do
    [ "$_mp_swap" = "$_mp_path" ] && set -- "$@" "[SWAP]"
  done
  jlist "$@"
}

# holders prints the kernel devices that hold a block device (an md array, a
# device-mapper volume) as a JSON list.
holders() {
  _h_dir=$1
  set --
  for _h in "$_h_dir"/holders/*; do
    [ -e "$_h" ] && set -- "$@" "${_h##*/}"
  done
  jlist "$@"
}

# probe runs blkid on a device and keeps what it found in BLKID_TYPE,
# BLKID_UUID, BLKID_LABEL, BLKID_VERSION (a filesystem, a RAID, LVM or ZFS
# member, a swap area), BLKID_PTTYPE (a partition table), BLKID_PARTLABEL and
# BLKID_PARTTYPE (the partition's entry in its table). -p probes the device
# itself and never touches blkid's cache file. BLKID_OK is 0 without blkid.
probe() {
  BLKID_TYPE=''
  BLKID_UUID=''
  BLKID_LABEL=''
  BLKID_VERSION=''
  BLKID_PTTYPE=''
  BLKID_PARTLABEL=''
  BLKID_PARTTYPE=''
  BLKID_OK=0
  have blkid || return 0
  BLKID_OK=1
  # -o export escapes special characters with a backslash the shell way; read
  # without -r undoes that.
  # shellcheck disable=SC2162
  while IFS='=' read _k _v; do
    case $_k in
    TYPE) BLKID_TYPE=$_v ;;
    UUID) BLKID_UUID=$_v ;;
    LABEL) BLKID_LABEL=$_v ;;
    VERSION) BLKID_VERSION=$_v ;;
    PTTYPE) BLKID_PTTYPE=$_v ;;
    PART_ENTRY_NAME) BLKID_PARTLABEL=$_v ;;
    PART_ENTRY_TYPE) BLKID_PARTTYPE=$_v ;;
    esac
  done <<EOF
$(blkid -p -o export "$1" 2>/dev/null)
EOF
}

# signatures prints what probe found as a JSON list of {type, uuid, label,
# version}: empty when the device holds nothing blkid knows, null without blkid.
signatures() {
  if [ "$BLKID_OK" = 0 ]; then
    printf null
  elif [ -z "$BLKID_TYPE" ]; then
    printf '[]'
  else
    printf '[{"type": %s, "uuid": %s, "label": %s, "version": %s}]' \
      "$(js "$BLKID_TYPE")" "$(jsn "$BLKID_UUID")" "$(jsn "$BLKID_LABEL")" "$(jsn "$BLKID_VERSION")"
  fi
}

# udev_prop prints a property from udev's database for a device, if udev runs.
udev_prop() {
  [ -r "/run/udev/data/b$1" ] || return 0
  awk -v key="E:$2=" 'index($0, key) == 1 { print substr($0, length(key) + 1); exit }' "/run/udev/data/b$1" 2>/dev/null
}

# by_id prints the /dev/disk/by-id links that point at a device.
by_id() {
  _by_dev=$1
  set --
  if [ -d /dev/disk/by-id ]; then
    for _l in /dev/disk/by-id/*; do
      [ -L "$_l" ] || continue
      [ "$(readlink -f "$_l" 2>/dev/null)" = "$_by_dev" ] && set -- "$@" "$_l"
    done
  fi
  jlist "$@"
}

# is_disk says whether a /sys/block entry is a disk nixplan could install on
# (or a loop device with a backing file, which tests use as disks).
disk_type() {
  case ${1##*/} in
  loop*)
    [ -e "$1/loop/backing_file" ] && printf loop
    ;;
  ram* | zram* | md* | dm-* | sr* | fd* | nbd* | mtdblock* | drbd*) ;;
  *) [ "$(readf "$1/size")" != 0 ] && printf disk ;;
  esac
}

print_partition() {
  _p=$1
  _pname=${_p##*/}
  probe "/dev/$_pname"
  printf '        {"name": %s, "path": %s, "number": %s, "start_bytes": %s, "size_bytes": %s,\n' \
    "$(js "$_pname")" "$(js "/dev/$_pname")" "$(jnum "$(readf "$_p/partition")")" \
    "$(jnum "$(sectors "$(readf "$_p/start")")")" "$(jnum "$(sectors "$(readf "$_p/size")")")"
  printf '         "part_label": %s, "part_type": %s, "by_id": %s,\n' \
    "$(jsn "$BLKID_PARTLABEL")" "$(jsn "$BLKID_PARTTYPE")" "$(by_id "/dev/$_pname")"
  printf '         "signatures": %s, "holders": %s, "mountpoints": %s}' \
    "$(signatures)" "$(holders "$_p")" "$(mountpoints "$_p" "/dev/$_pname")"
}

# sectors turns a count of 512-byte sectors (sysfs always counts in those)
# into bytes.
sectors() {
  case $1 in
  '' | *[!0-9]*) ;;
  *) echo "$(($1 * 512))" ;;
  esac
}

print_disk() {
  _d=$1
  _type=$2
  _name=${_d##*/}
  _majmin=$(readf "$_d/dev")
  _model=$(udev_prop "$_majmin" ID_MODEL)
  [ -n "$_model" ] || _model=$(readf "$_d/device/model")
  _serial=$(udev_prop "$_majmin" ID_SERIAL_SHORT)
  [ -n "$_serial" ] || _serial=$(readf "$_d/device/serial")
  [ -n "$_serial" ] || _serial=$(readf "$_d/serial")
  if [ -z "$_serial" ] && have lsblk; then
    _serial=$(lsblk -dno SERIAL "/dev/$_name" 2>/dev/null)
  fi
  _wwn=$(udev_prop "$_majmin" ID_WWN)
  [ -n "$_wwn" ] || _wwn=$(readf "$_d/device/wwid")
  [ -n "$_wwn" ] || _wwn=$(readf "$_d/wwid")
  # Trim the padding some drives put around model and serial.
  _model=$(printf '%s' "$_model" | awk '{ $1 = $1; print }')
  _serial=$(printf '%s' "$_serial" | awk '{ $1 = $1; print }')
  probe "/dev/$_name"
  printf '    {\n'
  printf '      "name": %s, "path": %s, "type": %s,\n' "$(js "$_name")" "$(js "/dev/$_name")" "$(js "$_type")"
  printf '      "size_bytes": %s, "logical_sector_bytes": %s,\n' \
    "$(jnum "$(sectors "$(readf "$_d/size")")")" "$(jnum "$(readf "$_d/queue/logical_block_size")")"
  printf '      "model": %s, "serial": %s, "wwn": %s,\n' "$(jsn "$_model")" "$(jsn "$_serial")" "$(jsn "$_wwn")"
  printf '      "by_id": %s,\n' "$(by_id "/dev/$_name")"
  printf '      "rotational": %s, "removable": %s, "read_only": %s,\n' \
    "$(jbool "$(readf "$_d/queue/rotational")")" "$(jbool "$(readf "$_d/removable")")" "$(jbool "$(readf "$_d/ro")")"
  printf '      "partition_table": %s, "signatures": %s,\n' "$(jsn "$BLKID_PTTYPE")" "$(signatures)"
  printf '      "holders": %s, "mountpoints": %s,\n' "$(holders "$_d")" "$(mountpoints "$_d" "/dev/$_name")"
  printf '      "partitions": ['
  _psep='\n'
  for _p in "$_d/$_name"*; do
    [ -e "$_p/partition" ] || continue
    printf '%b' "$_psep"
    print_partition "$_p"
    _psep=',\n'
  done
  [ "$_psep" = '\n' ] || printf '\n      '
  printf ']\n    }'
}

print_disks() {
  printf '  "disks": ['
  _dsep='\n'
  for _d in /sys/block/*; do
    [ -e "$_d" ] || continue
    _t=$(disk_type "$_d")
    [ -n "$_t" ] || continue
    printf '%b' "$_dsep"
    print_disk "$_d" "$_t"
    _dsep=',\n'
  done
  [ "$_dsep" = '\n' ] || printf '\n  '
  printf '],\n'
}

# slaves prints the devices an md array or a device-mapper volume is built on.
slaves() {
  _s_dir=$1
  set --
  for _s in "$_s_dir"/slaves/*; do
    [ -e "$_s" ] && set -- "$@" "${_s##*/}"
  done
  jlist "$@"
}

print_md_arrays() {
  printf '  "md_arrays": ['
  _msep='\n'
  for _m in /sys/block/md*; do
    [ -d "$_m/md" ] || continue
    printf '%b' "$_msep"
    printf '    {"name": %s, "path": %s, "level": %s, "state": %s, "size_bytes": %s, "members": %s, "mountpoints": %s}' \
      "$(js "${_m##*/}")" "$(js "/dev/${_m##*/}")" "$(jsn "$(readf "$_m/md/level")")" \
      "$(jsn "$(readf "$_m/md/array_state")")" "$(jnum "$(sectors "$(readf "$_m/size")")")" \
      "$(slaves "$_m")" "$(mountpoints "$_m" "/dev/${_m##*/}")"
    _msep=',\n'
  done
  [ "$_msep" = '\n' ] || printf '\n  '
  printf '],\n'
}

print_dm_volumes() {
  printf '  "dm_volumes": ['
  _vsep='\n'
  for _v in /sys/block/dm-*; do
    [ -d "$_v/dm" ] || continue
    printf '%b' "$_vsep"
    printf '    {"name": %s, "dm_name": %s, "uuid": %s, "members": %s, "mountpoints": %s}' \
      "$(js "${_v##*/}")" "$(jsn "$(readf "$_v/dm/name")")" "$(jsn "$(readf "$_v/dm/uuid")")" \
      "$(slaves "$_v")" "$(mountpoints "$_v" "/dev/${_v##*/}")"
    _vsep=',\n'
  done
  [ "$_vsep" = '\n' ] || printf '\n  '
  printf '],\n'
}

# Imported ZFS pools show up under /proc/spl/kstat/zfs when the module is loaded.
print_zfs_pools() {
  set --
  if [ -d /proc/spl/kstat/zfs ]; then
    for _z in /proc/spl/kstat/zfs/*; do
      [ -d "$_z" ] && set -- "$@" "${_z##*/}"
    done
  fi
  printf '  "zfs_pools": %s,\n' "$(jlist "$@")"
}

# IP_ADDRS, IP_ROUTES4 and IP_ROUTES6 hold `ip` output, read once.
IP_ADDRS=
IP_ROUTES4=
IP_ROUTES6=
if have ip; then
  IP_ADDRS=$(ip -o addr show 2>/dev/null)
  IP_ROUTES4=$(ip -4 route show table main 2>/dev/null)
  IP_ROUTES6=$(ip -6 route show table main 2>/dev/null)
fi
DEFAULT_DEVS=$(printf '%s\n%s\n' "$IP_ROUTES4" "$IP_ROUTES6" | awk '$1 == "default" { for (i = 2; i < NF; i++) if ($i == "dev") print $(i + 1) }')

# AWK_JS is an awk function that quotes a string for JSON (for names that come
# from the kernel, which are plain but not guaranteed to be).
AWK_JS='function js(s) { gsub(/[\\"]/, "\\\\&", s); gsub(/[[:cntrl:]]/, "?", s); return "\"" s "\"" }'

# addresses prints an interface's addresses as a JSON list of
# {family, address, prefix, scope}.
addresses() {
  printf '['
  if [ -n "$IP_ADDRS" ]; then
    printf '%s\n' "$IP_ADDRS" | awk -v dev="$1" "$AWK_JS"'
      { name = $2; sub(/@.*/, "", name) }
      name == dev && ($3 == "inet" || $3 == "inet6") {
        split($4, a, "/")
        scope = "null"
        for (i = 5; i < NF; i++) if ($i == "scope") scope = js($(i + 1))
        printf "%s{\"family\": \"%s\", \"address\": %s, \"prefix\": %d, \"scope\": %s}", sep, ($3 == "inet" ? "ipv4" : "ipv6"), js(a[1]), a[2], scope
        sep = ", "
      }'
  fi
  printf ']'
}

# routes prints one family's main routing table as JSON objects {family,
# destination, gateway, interface, onlink}, each on its own line after a
# comma; destination "default" is the default route.
routes() {
  [ -n "$2" ] || return 0
  printf '%s\n' "$2" | awk -v family="$1" "$AWK_JS"'
    NF > 0 && $1 !~ /^(unreachable|blackhole|prohibit|throw|local|broadcast|multicast|anycast)$/ {
      dst = $1; via = "null"; dev = "null"; onlink = "false"
      for (i = 2; i <= NF; i++) {
        if ($i == "via" && i < NF) via = js($(i + 1) == "inet6" || $(i + 1) == "inet" ? $(i + 2) : $(i + 1))
        if ($i == "dev" && i < NF) dev = js($(i + 1))
        if ($i == "onlink") onlink = "true"
      }
      if (dst != "default" && !index(dst, "/")) dst = dst (family == "ipv6" ? "/128" : "/32")
      printf ",\n    {\"family\": \"%s\", \"destination\": %s, \"gateway\": %s, \"interface\": %s, \"onlink\": %s}", family, js(dst), via, dev, onlink
    }'
}

print_routes() {
  _routes=$(routes ipv4 "$IP_ROUTES4"; routes ipv6 "$IP_ROUTES6")
  _routes=${_routes#,}
  if [ -n "$_routes" ]; then
    printf '  "routes": [%s\n  ],\n' "$_routes"
  else
    printf '  "routes": [],\n'
  fi
}

print_interfaces() {
  printf '  "interfaces": ['
  _isep='\n'
  for _i in /sys/class/net/*; do
    [ -e "$_i" ] || continue
    _ifname=${_i##*/}
    [ "$_ifname" = lo ] && continue
    _phys=0
    [ -e "$_i/device" ] && _phys=1
    _driver=
    [ -e "$_i/device/driver" ] && _driver=$(readlink "$_i/device/driver" 2>/dev/null)
    _driver=${_driver##*/}
    _def=0
    for _dd in $DEFAULT_DEVS; do
      [ "$_dd" = "$_ifname" ] && _def=1
    done
    printf '%b' "$_isep"
    printf '    {"name": %s, "mac": %s, "physical": %s, "driver": %s, "operstate": %s, "mtu": %s,\n' \
      "$(js "$_ifname")" "$(jsn "$(readf "$_i/address")")" "$(jbool "$_phys")" "$(jsn "$_driver")" \
      "$(jsn "$(readf "$_i/operstate")")" "$(jnum "$(readf "$_i/mtu")")"
    printf '     "default_route": %s, "addresses": %s}' "$(jbool "$_def")" "$(addresses "$_ifname")"
    _isep=',\n'
  done
  [ "$_isep" = '\n' ] || printf '\n  '
  printf '],\n'
}

print_firmware() {
  _mode=bios
  _sb=
  if [ -d /sys/firmware/efi ]; then
    _mode=uefi
    _sbvar=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
    # The variable is 4 bytes of attributes, then the value: 1 on, 0 off.
    if [ -r "$_sbvar" ] && have od; then
      _sb=$(od -An -tu1 "$_sbvar" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) last = $i } END { print last }')
    fi
  fi
  printf '  "firmware": {"mode": %s, "secure_boot": %s},\n' "$(js "$_mode")" "$(jbool "$_sb")"
}

print_os() {
  _id=''
  _version=''
  _pretty=''
  if [ -r /etc/os-release ]; then
    while IFS='=' read -r _k _v; do
      _v=${_v#\"}
      _v=${_v%\"}
      case $_k in
      ID) _id=$_v ;;
      VERSION_ID) _version=$_v ;;
      PRETTY_NAME) _pretty=$_v ;;
      esac
    done </etc/os-release
  fi
  printf '  "os": {"id": %s, "version_id": %s, "pretty_name": %s},\n' "$(jsn "$_id")" "$(jsn "$_version")" "$(jsn "$_pretty")"
}

print_tools() {
  printf '  "tools": {'
  _tsep=
  for _t in $TOOLS; do
    _has=0
    have "$_t" && _has=1
    printf '%s"%s": %s' "$_tsep" "$_t" "$(jbool "$_has")"
    _tsep=', '
  done
  printf '},\n'
}

# fingerprint prints the OpenSSH SHA256 fingerprint of a base64 key body, as
# ssh-keygen -l does: "SHA256:" and the unpadded base64 of the body's sha256.
# awk does the hex-to-base64 step, so no binary passes through the shell.
fingerprint() {
  have base64 && have sha256sum || return 0
  _hex=$(printf '%s' "$1" | base64 -d 2>/dev/null | sha256sum | awk '{ print $1 }')
  [ ${#_hex} = 64 ] || return 0
  printf '%s' "$_hex" | awk '{
    hex = "0123456789abcdef"
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    n = 0
    for (i = 1; i < length($0); i += 2)
      bytes[n++] = (index(hex, substr($0, i, 1)) - 1) * 16 + index(hex, substr($0, i + 1, 1)) - 1
    out = "SHA256:"
    for (i = 0; i < n; i += 3) {
      v = bytes[i] * 65536 + (i + 1 < n ? bytes[i + 1] * 256 : 0) + (i + 2 < n ? bytes[i + 2] : 0)
      out = out substr(b64, int(v / 262144) % 64 + 1, 1) substr(b64, int(v / 4096) % 64 + 1, 1)
      if (i + 1 < n) out = out substr(b64, int(v / 64) % 64 + 1, 1)
      if (i + 2 < n) out = out substr(b64, v % 64 + 1, 1)
    }
    printf "%s", out
  }'
}

# print_keys prints root's authorized keys as {file, type, fingerprint,
# comment}; the key bodies stay on the machine.
print_keys() {
  printf '  "authorized_keys": ['
  _ksep='\n'
  # shellcheck disable=SC2094 # the files are only read
  for _f in $KEY_FILES; do
    [ -r "$_f" ] || continue
    while IFS= read -r _line || [ -n "$_line" ]; do
      # Find the key type among the fields (options may come first).
      _ktype=''
      _kbody=''
      _kcomment=''
      set -f
      # shellcheck disable=SC2086 # split the line into fields on purpose
      set -- $_line
      set +f
      while [ $# -gt 1 ]; do
        case $1 in
        ssh-* | ecdsa-sha2-* | sk-ssh-* | sk-ecdsa-*)
          _ktype=$1
          _kbody=$2
          shift 2
          _kcomment=$*
          break
          ;;
        esac
        shift
      done
      [ -n "$_ktype" ] || continue
      printf '%b' "$_ksep"
      # shellcheck disable=SC2094 # $_f is only named here, not written
      printf '    {"file": %s, "type": %s, "fingerprint": %s, "comment": %s}' \
        "$(js "$_f")" "$(js "$_ktype")" "$(jsn "$(fingerprint "$_kbody")")" "$(jsn "$_kcomment")"
      _ksep=',\n'
    done <"$_f"
  done
  [ "$_ksep" = '\n' ] || printf '\n  '
  printf ']\n'
}

# print_nameservers prints the resolvers the rescue system uses: the
# provider's, usually, which tells the provider apart.
print_nameservers() {
  set --
  if [ -r "$RESOLV_CONF" ]; then
    while read -r _ns_kw _ns_addr _ns_rest; do
      if [ "$_ns_kw" = nameserver ] && [ -n "$_ns_addr" ]; then
        set -- "$@" "$_ns_addr"
      fi
    done <"$RESOLV_CONF"
  fi
  printf '  "nameservers": %s,\n' "$(jlist "$@")"
}

ram_bytes() {
  _kib=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo 2>/dev/null)
  case $_kib in
  '' | *[!0-9]*) ;;
  *) echo "$((_kib * 1024))" ;;
  esac
}

main() {
  printf '{\n'
  printf '  "version": %s,\n' "$FACTS_VERSION"
  printf '  "collected_by": "facts.sh",\n'
  _date=
  have date && _date=$(date -u '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null)
  printf '  "collected_at": %s,\n' "$(jsn "$_date")"
  printf '  "hostname": %s,\n' "$(jsn "$(readf /proc/sys/kernel/hostname)")"
  _kernel=''
  _arch=''
  if have uname; then
    _kernel=$(uname -r 2>/dev/null)
    _arch=$(uname -m 2>/dev/null)
  fi
  [ -n "$_kernel" ] || _kernel=$(readf /proc/sys/kernel/osrelease)
  printf '  "kernel": %s,\n' "$(jsn "$_kernel")"
  printf '  "arch": %s,\n' "$(jsn "$_arch")"
  print_os
  print_firmware
  printf '  "ram_bytes": %s,\n' "$(jnum "$(ram_bytes)")"
  print_disks
  print_md_arrays
  print_dm_volumes
  print_zfs_pools
  print_interfaces
  print_routes
  print_nameservers
  print_tools
  print_keys
  printf '}\n'
}

main
