// Parsers for numeric options that reject invalid values with a message naming the option.

import { UserError } from '../model/errors.ts';

export function integerOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new UserError(`option ${name}: "${value}" is not ${integerRange(min, max)}.`);
    }
    return parsed;
  };
}

export function numberOption(name: string, min: number, max = Number.POSITIVE_INFINITY): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new UserError(`option ${name}: "${value}" is not a number between ${min} and ${max}.`);
    }
    return parsed;
  };
}

/** Describes the accepted integers, leaving out an upper bound that only the number type sets. */
function integerRange(min: number, max: number): string {
  if (max === Number.MAX_SAFE_INTEGER) {
    if (min === 1) return 'a positive integer';
    if (min === 0) return 'a non-negative integer';
    return `an integer of at least ${min}`;
  }
  return `an integer between ${min} and ${max}`;
}
