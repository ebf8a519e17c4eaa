/**
 * Calendar arithmetic in UTC on integers, without the engine's `Date` (whose time zone and clock a plugin must not
 * depend on): days since the epoch, civil dates, weekdays and ISO weeks.
 */

import { DAY_MS } from "./types.ts";

/** An ISO 8601 week: weeks run Monday to Sunday, and week 1 is the one with the year's first Thursday. */
export class IsoWeek {
  constructor(
    /** The ISO week-numbering year (the first and last days of a calendar year may belong to a neighbour). */
    readonly year: number,
    /** 1 to 53. */
    readonly week: number,
  ) {}

  /** `2026-W02`. */
  toString(): string {
    return `${pad(this.year, 4)}-W${pad(this.week, 2)}`;
  }
}

/** A date of the proleptic Gregorian calendar, in UTC. */
export class UtcDate {
  private constructor(
    readonly year: number,
    /** 1 to 12. */
    readonly month: number,
    /** 1 to 31. */
    readonly day: number,
  ) {}

  /** The date, or `undefined` when there is no such day (`UtcDate.of(2026, 2, 30)`). */
  static of(year: number, month: number, day: number): UtcDate | undefined {
    if (!Number.isInteger(year) || !Number.isInteger(month) || !Number.isInteger(day)) {
      return undefined;
    }
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
      return undefined;
    }
    return new UtcDate(year, month, day);
  }

  /** The UTC date of an instant in milliseconds since the Unix epoch (before the epoch too). */
  static fromUnixMs(ms: number): UtcDate {
    return UtcDate.fromDays(Math.floor(ms / DAY_MS));
  }

  /** The date `days` days after 1970-01-01 (negative: before). */
  static fromDays(days: number): UtcDate {
    // Howard Hinnant's civil_from_days.
    const z = days + 719_468;
    const era = Math.floor(z / 146_097);
    const doe = z - era * 146_097;
    const yoe = Math.trunc((doe - Math.trunc(doe / 1_460) + Math.trunc(doe / 36_524) - Math.trunc(doe / 146_096)) / 365);
    const doy = doe - (365 * yoe + Math.trunc(yoe / 4) - Math.trunc(yoe / 100));
    const mp = Math.trunc((5 * doy + 2) / 153);
    const day = doy - Math.trunc((153 * mp + 2) / 5) + 1;
    const month = mp < 10 ? mp + 3 : mp - 9;
    const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    return new UtcDate(year, month, day);
  }

  /** Days since 1970-01-01 (negative before it). */
  daysSinceEpoch(): number {
    const m = this.month;
    const y = this.year - (m <= 2 ? 1 : 0);
    const era = Math.floor(y / 400);
    const yoe = y - era * 400;
    const doy = Math.trunc((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + this.day - 1;
    const doe = yoe * 365 + Math.trunc(yoe / 4) - Math.trunc(yoe / 100) + doy;
    return era * 146_097 + doe - 719_468;
  }

  /** Midnight UTC at the start of the date, in milliseconds since the Unix epoch. */
  startMs(): number {
    return this.daysSinceEpoch() * DAY_MS;
  }

  /** ISO weekday: 1 for Monday to 7 for Sunday. */
  weekday(): number {
    return mod(this.daysSinceEpoch() + 3, 7) + 1;
  }

  /** The ISO week the date belongs to. */
  isoWeek(): IsoWeek {
    const days = this.daysSinceEpoch();
    const thursday = days - this.weekday() + 4;
    const year = UtcDate.fromDays(thursday).year;
    const jan1 = new UtcDate(year, 1, 1).daysSinceEpoch();
    return new IsoWeek(year, Math.trunc((thursday - jan1) / 7) + 1);
  }

  /** `2026-01-09`. */
  toString(): string {
    return `${pad(this.year, 4)}-${pad(this.month, 2)}-${pad(this.day, 2)}`;
  }
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

function pad(n: number, width: number): string {
  const s = String(Math.abs(n));
  return (n < 0 ? "-" : "") + (s.length >= width ? s : "0".repeat(width - s.length) + s);
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  switch (month) {
    case 2:
      return isLeap(year) ? 29 : 28;
    case 4:
    case 6:
    case 9:
    case 11:
      return 30;
    default:
      return 31;
  }
}
