// Parsers for numeric options that reject invalid values with a message naming the option.

import { UserError } from '../model/errors.ts';

export function integerOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new UserError(`option ${name}: "${value}" is not an integer between ${min} and ${max}.`);
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
