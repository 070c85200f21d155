// One spelling per client address: ports and brackets cut, IPv4-mapped IPv6 unwrapped, IPv6 grouped by prefix.

/**
 * `raw` spelled so that one client always gets the same identifier: surrounding spaces, a port (`1.2.3.4:5678`,
 * `[2001:db8::1]:443`, as some load balancers write X-Forwarded-For) and an IPv6 zone (`%eth0`) are cut, and an
 * IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack Node server reports) becomes its IPv4 address.
 * Below 128 `ipv6Subnet` bits, an IPv6 address becomes its network (`2001:db8:1:2::/64`): a subscriber is handed
 * a whole /64 (or more) and can rotate through it at no cost, so a budget per address would be one per request.
 * Anything that does not parse as an address is returned trimmed, as it is.
 */
export function normaliseAddress(raw: string, ipv6Subnet: number | false): string {
  const address = raw
    .trim()
    .replace(/^\[([^\]]*)\](:\d*)?$|^([\d.]+):\d*$/, "$1$3")
    .replace(/%.*$/, "")
    .toLowerCase()
    .replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  // IPv6 only, and never IPv4-mapped space (::ffff:0:0/96 is every IPv4 client, whatever the notation).
  if (ipv6Subnet === false || ipv6Subnet >= 128 || !/^[\da-f:]*:[\da-f:]*$/.test(address) || address.startsWith("::ffff:")) return address;
  // Eight groups, `::` expanded; anything else (a dotted IPv4 tail such as NAT64's) stays as it is.
  const halves = address.split("::").map((half) => (half ? half.split(":") : []));
  const zeros = 8 - halves.flat().length;
  if (halves.length > 2 || (halves.length > 1 ? zeros < 1 : zeros) || halves.flat().some((g) => !g || g.length > 4)) return address;
  const groups = [...halves[0]!, ...Array<string>(zeros).fill("0"), ...(halves[1] ?? [])];
  // The network's groups, masked, trailing zero groups written `::` (2001:db8::/64 for 2001:db8:0:0:…).
  const network = groups
    .slice(0, Math.ceil(ipv6Subnet / 16))
    .map((g, i) => parseInt(g, 16) & ((0xffff << (16 - Math.min(16, ipv6Subnet - 16 * i))) & 0xffff));
  while (network.at(-1) === 0) network.pop();
  return `${network.map((g) => g.toString(16)).join(":")}::/${ipv6Subnet}`;
}

/**
 * Whether `address` is loopback, private, link-local or shared (CGNAT) space: where a proxy of one's own sits,
 * never a client on the internet. Used only to hint that `trustProxies` may be missing.
 */
export function isPrivateAddress(address: string): boolean {
  return /^(10|127)\.|^172\.(1[6-9]|2\d|3[01])\.|^192\.168\.|^169\.254\.|^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|^::1$|^f[cd]|^fe[89ab]/.test(
    normaliseAddress(address, false),
  );
}
