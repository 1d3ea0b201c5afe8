/** A MAC address as dnsmasq prints it: six lower-case hex pairs joined by ':'. */
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
