/** Byte sizes as people write them: `10GiB`, `500 MB`, `1.5KiB`, `1048576`. */

const UNITS: Record<string, bigint> = {
  "": 1n,
  byte: 1n,
  bytes: 1n,
  b: 1n,
  kb: 1_000n,
  mb: 1_000_000n,
  gb: 1_000_000_000n,
  tb: 1_000_000_000_000n,
  pb: 1_000_000_000_000_000n,
  eb: 1_000_000_000_000_000_000n,
  kib: 1n << 10n,
  mib: 1n << 20n,
  gib: 1n << 30n,
  tib: 1n << 40n,
  pib: 1n << 50n,
  eib: 1n << 60n,
};

const MAX_U64 = (1n << 64n) - 1n;

/**
 * Parses a size: a number (fractions allowed) and an optional unit, decimal (`kB`, `MB`, `GB`, ...) or binary
 * (`KiB`, `MiB`, `GiB`, ...), in any case. Single-letter units such as `G` are refused as ambiguous. Throws an
 * `Error` whose message says what is wrong; sizes above 2^53 bytes lose precision as numbers.
 */
export function parseByteSize(text: string): number {
  const s = text.trim();
  const split = /[^0-9.]/.exec(s)?.index ?? s.length;
  const number = s.slice(0, split);
  const unit = s.slice(split).trim();
  const dot = number.indexOf(".");
  const int = dot < 0 ? number : number.slice(0, dot);
  const frac = dot < 0 ? "" : number.slice(dot + 1);
  if (int === "" && frac === "") {
    throw new Error("expected a number of bytes, e.g. 10GiB");
  }
  if (frac.includes(".") || frac.length > 18) {
    throw new Error(`malformed number ${JSON.stringify(number)}`);
  }
  const lower = unit.toLowerCase();
  if (/^[kmgtpe]$/.test(lower)) {
    const u = unit.toUpperCase();
    throw new Error(`ambiguous unit ${JSON.stringify(unit)}: write ${u}B (powers of 1000) or ${u}iB (powers of 1024)`);
  }
  const multiplier = Object.prototype.hasOwnProperty.call(UNITS, lower) ? UNITS[lower] : undefined;
  if (multiplier === undefined) {
    throw new Error(`unknown unit ${JSON.stringify(unit)} (expected B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, ...)`);
  }
  const scale = 10n ** BigInt(frac.length);
  const scaled = BigInt(int === "" ? "0" : int) * scale + BigInt(frac === "" ? "0" : frac);
  const bytes = (scaled * multiplier) / scale;
  if (bytes > MAX_U64) {
    throw new Error(`${JSON.stringify(s)} is too large (at most 16 EiB)`);
  }
  return Number(bytes);
}

/** A size in binary units, rounded to hundredths: `512 B`, `1.5 KiB`, `10 GiB`. */
export function formatByteSize(bytes: number): string {
  const names = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  let exp = Math.min(Math.floor(Math.log2(bytes) / 10), 6);
  while (exp > 1 && bytes < 2 ** (10 * exp)) {
    exp--;
  }
  const unit = 2 ** (10 * exp);
  const hundredths = Math.round((bytes * 100) / unit);
  const whole = Math.floor(hundredths / 100);
  const frac = hundredths % 100;
  const name = names[exp - 1];
  if (frac === 0) {
    return `${whole} ${name}`;
  }
  return frac % 10 === 0 ? `${whole}.${frac / 10} ${name}` : `${whole}.${String(frac).padStart(2, "0")} ${name}`;
}
