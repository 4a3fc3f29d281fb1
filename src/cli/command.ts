import type { ParseArgsOptionsConfig } from "node:util";
import { UsageError, type FilesClient } from "./client.js";

export interface Context {
  client: FilesClient;
  url: string;
  json: boolean;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** The synopsis after "files ", e.g. "upload PATH [options]". */
  synopsis: string;
  /** [flags, description] rows for --help (aligned with the global options). */
  optionsHelp: [string, string][];
  /** A paragraph after the options, if any. */
  notes?: string;
  options: ParseArgsOptionsConfig;
  /** Names of the positional arguments, in order; a trailing "?" marks one optional. */
  positionals: string[];
  run(ctx: Context, positionals: string[], values: Values): Promise<void>;
}

export function stringValue(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/** A decimal integer option within [min, max], or undefined when absent. */
export function integerValue(values: Values, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = stringValue(values, name);
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${name} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? "" : ` to ${max}`}, not '${text}'`);
  }
  return Number(text);
}

export function writeJson(ctx: Context, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
