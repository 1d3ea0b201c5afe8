// The lease script of one network's dnsmasq (--dhcp-script with --leasefile-ro), as text. dnsmasq
// runs it as root from a helper forked before it drops privileges, one call at a time:
//
//   init                     print the saved leases in lease-file format (the init file start()
//                            wrote from ZooKeeper's leases) and exit 0; a non-zero exit kills dnsmasq
//   add|old MAC IP [HOST]    write LEASEDIR/MAC atomically (tmp + mv), one line
//                            `<expires> <mac> <ip> <hostname|*> <clientid|*>`; `old` comes at start
//                            for each init lease, on a changed hostname, and with --leasefile-ro on
//                            every renewal (a new expiry)
//   del MAC IP [HOST]        remove LEASEDIR/MAC when it still names IP (a client that moved to
//                            another address keeps the file of its new lease)
//   anything else            ignored (arp-add, arp-del, tftp, relay-snoop, future actions)
//
// The expiry comes from DNSMASQ_LEASE_EXPIRES (seconds since the epoch, 0 = infinite); a dnsmasq
// built with HAVE_BROKEN_RTC sets DNSMASQ_LEASE_LENGTH instead, and then now + length is written
// (such a build would also read the init file's first field as a length: it is not supported
// beyond that). DNSMASQ_TIME_REMAINING (always set for a finite lease) is the last resort.
//
// Nothing a client sends can run anything: every value is quoted and only ever printed with
// printf '%s'; a MAC or IP that is not plainly one is ignored (it names a file), a hostname or
// client id of other characters is written as '*'. dnsmasq already refuses illegal hostnames; the
// parser (leases.ts) checks every field again and ignores a malformed file.

/** `text` as one single-quoted shell word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export interface ScriptPaths {
  initFile: string;
  leaseDir: string;
}

export function leaseScript(p: ScriptPaths): string {
  return `#!/bin/sh
# virtkeeper: lease script of one network's dnsmasq (drivers/dnsmasq/script.ts). Generated; do not edit.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022
INIT=${shellQuote(p.initFile)}
DIR=${shellQuote(p.leaseDir)}

action=$1
case "$action" in
  init)
    if [ -f "$INIT" ]; then cat "$INIT" || exit 0; fi
    exit 0
    ;;
  add|old|del) ;;
  *) exit 0 ;;
esac

mac=$2
ip=$3
host=$4
case "$mac" in
  [0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]) ;;
  *) exit 0 ;;
esac
mac=$(printf '%s' "$mac" | tr 'A-F' 'a-f')
case "$ip" in
  ''|*[!0-9.]*) exit 0 ;;
esac
file="$DIR/$mac"

if [ "$action" = del ]; then
  if [ -f "$file" ] && read -r _expires _mac _ip _rest < "$file" && [ "$_ip" = "$ip" ]; then
    rm -f "$file"
  fi
  exit 0
fi

expires=\${DNSMASQ_LEASE_EXPIRES-}
if [ -z "$expires" ] && [ -n "\${DNSMASQ_LEASE_LENGTH-}" ]; then
  case "$DNSMASQ_LEASE_LENGTH" in
    ''|*[!0-9]*) exit 0 ;;
    0) expires=0 ;;
    0*) exit 0 ;;
    *) expires=$(( $(date +%s) + DNSMASQ_LEASE_LENGTH )) ;;
  esac
fi
if [ -z "$expires" ] && [ -n "\${DNSMASQ_TIME_REMAINING-}" ]; then
  case "$DNSMASQ_TIME_REMAINING" in
    ''|0?*|*[!0-9]*) exit 0 ;;
    *) expires=$(( $(date +%s) + DNSMASQ_TIME_REMAINING )) ;;
  esac
fi
case "$expires" in
  ''|*[!0-9]*) exit 0 ;;
esac
case "$host" in
  ''|[!A-Za-z0-9]*|*[!A-Za-z0-9_-]*) host='*' ;;
esac
clientid=\${DNSMASQ_CLIENT_ID-}
case "$clientid" in
  ''|*[!0-9a-fA-F:]*) clientid='*' ;;
esac

mkdir -p "$DIR" || exit 0
tmp="$DIR/.$mac.$$"
if printf '%s %s %s %s %s\\n' "$expires" "$mac" "$ip" "$host" "$clientid" > "$tmp"; then
  mv -f "$tmp" "$file"
else
  rm -f "$tmp"
fi
exit 0
`;
}
