// Printing: colours (only when stdout is a TTY), aligned tables, YAML/JSON renderings.
import pc from 'picocolors';
import { stringify } from 'yaml';

export function stdoutIsTty(): boolean {
  return process.stdout.isTTY === true;
}

/** Colours for stdout: enabled only on a TTY (and not with NO_COLOR). */
export const colors = pc.createColors(stdoutIsTty() && !process.env.NO_COLOR);

export function println(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/**
 * A row whose first cells are aligned as usual and whose `note` takes the place of the remaining
 * columns (an object that cannot be read: the reason instead of its fields).
 */
export interface NoteRow {
  cells: readonly string[];
  note: string;
}

function isNoteRow(row: readonly string[] | NoteRow): row is NoteRow {
  return !Array.isArray(row);
}

/** Columns padded to their widest cell, separated by three spaces; trailing spaces trimmed. */
export function table(headers: readonly string[], rows: readonly (readonly string[] | NoteRow)[]): string {
  const cellsOf = (r: readonly string[] | NoteRow): readonly string[] => (isNoteRow(r) ? r.cells : r);
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(cellsOf(r)[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(cell))))
      .join('   ')
      .trimEnd();
  const render = (r: readonly string[] | NoteRow) => (isNoteRow(r) ? line([...r.cells, r.note]) : line(r));
  return [line(headers), ...rows.map(render)].join('\n');
}

/** Raw znode bytes for people: the text as is, JSON-quoted when it holds control characters; at most `max` characters. */
export function rawText(raw: Buffer, max = 4096): string {
  const text = raw.toString('utf8');
  // eslint-disable-next-line no-control-regex
  const shown = /[\u0000-\u0008\u000b-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
  return shown.length > max ? `${shown.slice(0, max)}… (${raw.length} bytes in all)` : shown;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

/** YAML with keys sorted at every level, so equal values always render identically. */
export function toYaml(value: unknown): string {
  if (value === undefined) return '';
  return stringify(value, { sortMapEntries: true, lineWidth: 0 });
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
}

/** Indents every line of `text` by `n` spaces (empty lines stay empty). */
export function indent(text: string, n = 2): string {
  const pad = ' '.repeat(n);
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n');
}

export function orDash(value: string | number | undefined | null): string {
  return value === undefined || value === null || value === '' ? '-' : String(value);
}

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';
