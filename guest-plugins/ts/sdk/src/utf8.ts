/**
 * UTF-8 byte arithmetic over JavaScript strings (UTF-16), without TextEncoder/TextDecoder: QuickJS components have
 * neither, and the host's `segment-names.ends` are UTF-8 byte offsets into a string that arrives already decoded.
 */

/** The number of bytes of `text` in UTF-8 (a lone surrogate counts 3 bytes, as U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (isHighSurrogate(c) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

/** `text` cut to at most `maxBytes` bytes of UTF-8, on a character boundary (as the host cuts texts). */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) {
    return text;
  }
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let width = 3;
    let units = 1;
    if (c < 0x80) {
      width = 1;
    } else if (c < 0x800) {
      width = 2;
    } else if (isHighSurrogate(c) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      width = 4;
      units = 2;
    }
    if (bytes + width > maxBytes) {
      return text.slice(0, i);
    }
    bytes += width;
    i += units - 1;
  }
  return text;
}

/**
 * Splits `text` at UTF-8 byte offsets: part `k` is the text from byte `ends[k - 1]` (0 for the first) up to byte
 * `ends[k]`. Returns the parts, or the index of the first part whose offsets are not on character boundaries
 * within the text (a host bug), as `{ bad, start, end, length }`.
 */
export function splitAtUtf8Offsets(
  text: string,
  ends: ArrayLike<number | bigint>,
): string[] | { bad: number; start: number; end: number; length: number } {
  const n = ends.length;
  const out: string[] = new Array(n);
  // All ASCII: bytes and UTF-16 code units coincide (any other character takes more bytes than code units).
  if (n > 0 && Number(ends[n - 1]) === text.length && ASCII.test(text)) {
    let start = 0;
    for (let k = 0; k < n; k++) {
      const end = Number(ends[k]);
      if (!(end >= start && end <= text.length)) {
        return { bad: k, start, end, length: text.length };
      }
      out[k] = text.slice(start, end);
      start = end;
    }
    return out;
  }
  let byte = 0;
  let unit = 0;
  let startByte = 0;
  let startUnit = 0;
  for (let k = 0; k < n; k++) {
    const end = Number(ends[k]);
    if (!(end >= startByte)) {
      return { bad: k, start: startByte, end, length: utf8Length(text) };
    }
    while (byte < end && unit < text.length) {
      const c = text.charCodeAt(unit);
      if (c < 0x80) {
        byte += 1;
        unit += 1;
      } else if (c < 0x800) {
        byte += 2;
        unit += 1;
      } else if (isHighSurrogate(c) && unit + 1 < text.length && isLowSurrogate(text.charCodeAt(unit + 1))) {
        byte += 4;
        unit += 2;
      } else {
        byte += 3;
        unit += 1;
      }
    }
    if (byte !== end) {
      return { bad: k, start: startByte, end, length: utf8Length(text) };
    }
    out[k] = text.slice(startUnit, unit);
    startByte = byte;
    startUnit = unit;
  }
  return out;
}

const ASCII = /^[\x00-\x7f]*$/;

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
